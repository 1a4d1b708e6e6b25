//! A rule in English words: "every weekday at 09:00", "every month on the last Friday at 18:30".
//!
//! For people reading a list of schedules (the dashboard, agents, the CLI), not for parsing
//! back: the RRULE stays the exact form. Every part of a rule is said; a part with no short
//! phrase is still named (`on day 100 of the year`), never dropped.

use jiff::civil::DateTime;

use crate::rule::{Frequency, Rule, Until, Weekday, WeekdayNum};

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn weekday_name(d: Weekday) -> &'static str {
    match d {
        Weekday::Monday => "Monday",
        Weekday::Tuesday => "Tuesday",
        Weekday::Wednesday => "Wednesday",
        Weekday::Thursday => "Thursday",
        Weekday::Friday => "Friday",
        Weekday::Saturday => "Saturday",
        Weekday::Sunday => "Sunday",
    }
}

/// "1st", "2nd", "3rd", "11th", "22nd".
fn ordinal(n: i64) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// "the 3rd", "the last", "the 2nd to last".
fn position(n: i64) -> String {
    match n {
        -1 => "the last".into(),
        n if n < 0 => format!("the {} to last", ordinal(-n)),
        n => format!("the {}", ordinal(n)),
    }
}

/// "a", "a and b", "a, b and c".
fn list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

fn unit(freq: Frequency) -> &'static str {
    match freq {
        Frequency::Secondly => "second",
        Frequency::Minutely => "minute",
        Frequency::Hourly => "hour",
        Frequency::Daily => "day",
        Frequency::Weekly => "week",
        Frequency::Monthly => "month",
        Frequency::Yearly => "year",
    }
}

fn weekday_phrase(d: &WeekdayNum) -> String {
    match d.ordinal {
        None => weekday_name(d.weekday).to_string(),
        Some(n) => format!("{} {}", position(i64::from(n)), weekday_name(d.weekday)),
    }
}

const WORKDAYS: [Weekday; 5] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
];

fn is_workdays(days: &[WeekdayNum]) -> bool {
    days.len() == 5
        && days.iter().all(|d| d.ordinal.is_none())
        && WORKDAYS
            .iter()
            .all(|w| days.iter().any(|d| d.weekday == *w))
}

fn hhmm(h: i64, m: i64, s: i64) -> String {
    if s == 0 {
        format!("{h:02}:{m:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

impl Rule {
    /// The rule in English, with the time of day taken from `start` (DTSTART, local to the
    /// rule's zone) where the rule does not give its own, and `zone` appended when given:
    /// `"every weekday at 09:00, Europe/Berlin"`.
    pub fn describe(&self, start: DateTime, zone: Option<&str>) -> String {
        let mut s = String::from("every ");
        let plain_days = !self.by_day.is_empty() && self.by_day.iter().all(|d| d.ordinal.is_none());
        let weekly_like = matches!(self.freq, Frequency::Daily | Frequency::Weekly);
        // The period: "weekday", "Monday and Friday", "2 weeks", "month".
        if self.interval == 1 && weekly_like && is_workdays(&self.by_day) {
            s.push_str("weekday");
        } else if self.interval == 1 && weekly_like && plain_days {
            let days: Vec<String> = self.by_day.iter().map(weekday_phrase).collect();
            s.push_str(&list(&days));
        } else {
            if self.interval == 1 {
                s.push_str(unit(self.freq));
            } else {
                s.push_str(&format!("{} {}s", self.interval, unit(self.freq)));
            }
            if !self.by_day.is_empty() {
                let days: Vec<String> = self.by_day.iter().map(weekday_phrase).collect();
                s.push_str(" on ");
                s.push_str(&list(&days));
            }
        }
        if !self.by_month_day.is_empty() {
            let days: Vec<String> = self
                .by_month_day
                .iter()
                .map(|&d| match d {
                    -1 => "the last day".to_string(),
                    d if d < 0 => format!("{} day", position(i64::from(d))),
                    d => format!("the {}", ordinal(i64::from(d))),
                })
                .collect();
            s.push_str(&format!(" on {}", list(&days)));
        }
        if !self.by_year_day.is_empty() {
            let days: Vec<String> = self.by_year_day.iter().map(|d| d.to_string()).collect();
            s.push_str(&format!(" on day {} of the year", list(&days)));
        }
        if !self.by_week_no.is_empty() {
            let weeks: Vec<String> = self.by_week_no.iter().map(|w| w.to_string()).collect();
            s.push_str(&format!(" in week {}", list(&weeks)));
        }
        if !self.by_month.is_empty() {
            let months: Vec<String> = self
                .by_month
                .iter()
                .filter_map(|&m| MONTHS.get(usize::from(m).wrapping_sub(1)))
                .map(|m| m.to_string())
                .collect();
            s.push_str(&format!(" in {}", list(&months)));
        }
        if !self.by_set_pos.is_empty() {
            let pos: Vec<String> = self
                .by_set_pos
                .iter()
                .map(|&p| position(i64::from(p)))
                .collect();
            s.push_str(&format!(
                ", only {} of each {}",
                list(&pos),
                unit(self.freq)
            ));
        }
        s.push_str(&self.time_phrase(start));
        match (self.count, self.until) {
            (Some(1), _) => s.push_str(", once"),
            (Some(n), _) => s.push_str(&format!(", {n} times")),
            (None, Some(Until::Date(d))) => s.push_str(&format!(", until {d}")),
            (None, Some(Until::Instant(t))) => {
                s.push_str(&format!(", until {}", t.strftime("%Y-%m-%d %H:%M UTC")))
            }
            (None, None) => {}
        }
        if let Some(zone) = zone {
            s.push_str(", ");
            s.push_str(zone);
        }
        s
    }

    /// " at 09:00 and 17:30", " at minute 0 and 30", or nothing for rules finer than an hour
    /// without their own BY parts.
    fn time_phrase(&self, start: DateTime) -> String {
        let (h0, m0, s0) = (
            i64::from(start.hour()),
            i64::from(start.minute()),
            i64::from(start.second()),
        );
        let hours: Vec<i64> = self.by_hour.iter().map(|&h| i64::from(h)).collect();
        let minutes: Vec<i64> = self.by_minute.iter().map(|&m| i64::from(m)).collect();
        let seconds: Vec<i64> = self.by_second.iter().map(|&x| i64::from(x)).collect();
        let or = |v: Vec<i64>, d: i64| if v.is_empty() { vec![d] } else { v };
        match self.freq {
            Frequency::Daily | Frequency::Weekly | Frequency::Monthly | Frequency::Yearly => {
                let (hs, ms, ss) = (or(hours, h0), or(minutes, m0), or(seconds, s0));
                let mut times = Vec::new();
                for h in &hs {
                    for m in &ms {
                        for x in &ss {
                            times.push(hhmm(*h, *m, *x));
                        }
                    }
                }
                if times.len() > 6 {
                    let n = times.len();
                    times.truncate(3);
                    times.push(format!("{} more times a day", n - 3));
                }
                format!(" at {}", list(&times))
            }
            Frequency::Hourly | Frequency::Minutely | Frequency::Secondly => {
                let mut out = String::new();
                if !hours.is_empty() {
                    let hs: Vec<String> = hours.iter().map(|h| format!("{h:02}h")).collect();
                    out.push_str(&format!(" during {}", list(&hs)));
                }
                if !minutes.is_empty() {
                    let ms: Vec<String> = minutes.iter().map(|m| m.to_string()).collect();
                    out.push_str(&format!(" at minute {}", list(&ms)));
                } else if self.freq == Frequency::Hourly {
                    out.push_str(&format!(" at minute {m0}"));
                }
                if !seconds.is_empty() {
                    let xs: Vec<String> = seconds.iter().map(|x| x.to_string()).collect();
                    out.push_str(&format!(" at second {}", list(&xs)));
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn say(rule: &str, start: &str) -> String {
        let r = Rule::parse(rule).expect("rule");
        let start: DateTime = start.parse().expect("start");
        r.describe(start, Some("Europe/Berlin"))
    }

    #[test]
    fn common_rules_read_as_people_say_them() {
        let t = "2026-01-05T09:00:00";
        assert_eq!(
            say("FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", t),
            "every weekday at 09:00, Europe/Berlin"
        );
        assert_eq!(say("FREQ=DAILY", t), "every day at 09:00, Europe/Berlin");
        assert_eq!(
            say("FREQ=WEEKLY;BYDAY=MO,WE", "2026-01-05T18:30:00"),
            "every Monday and Wednesday at 18:30, Europe/Berlin"
        );
        assert_eq!(
            say("FREQ=MONTHLY;BYDAY=-1FR", t),
            "every month on the last Friday at 09:00, Europe/Berlin"
        );
        assert_eq!(
            say("FREQ=MONTHLY;BYMONTHDAY=1,15;COUNT=6", t),
            "every month on the 1st and the 15th at 09:00, 6 times, Europe/Berlin"
        );
        assert_eq!(
            say("FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=25", t),
            "every year on the 25th in December at 09:00, Europe/Berlin"
        );
        assert_eq!(
            say("FREQ=HOURLY;INTERVAL=2;BYMINUTE=0,30", t),
            "every 2 hours at minute 0 and 30, Europe/Berlin"
        );
        assert_eq!(
            say("FREQ=DAILY;BYHOUR=9,17;UNTIL=20261231", t),
            "every day at 09:00 and 17:00, until 2026-12-31, Europe/Berlin"
        );
        assert_eq!(
            say("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1", t),
            "every month on Monday, Tuesday, Wednesday, Thursday and Friday, only the last of each month at 09:00, Europe/Berlin"
        );
    }

    #[test]
    fn ordinals_are_english() {
        let got: Vec<String> = [1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 101, 111]
            .iter()
            .map(|&n| ordinal(n))
            .collect();
        assert_eq!(
            got,
            [
                "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd",
                "101st", "111th"
            ]
        );
    }
}
