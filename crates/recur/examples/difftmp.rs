use recur::{Recurrence, Rule, Timestamp};
use std::io::BufRead;
fn main() {
    let mut bad = 0;
    let mut n = 0;
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        n += 1;
        let s = v["rrule"].as_str().unwrap();
        let start: Timestamp = v["dtstart"].as_str().unwrap().parse().unwrap();
        let want: Vec<String> = v["expected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect();
        let got: Result<Vec<String>, String> = Rule::parse(s)
            .map_err(|e| e.to_string())
            .and_then(|r| {
                Recurrence::new(start, "UTC", Some(r), vec![], vec![]).map_err(|e| e.to_string())
            })
            .map(|rec| {
                rec.iter_after(None)
                    .take(want.len())
                    .map(|t| t.to_string())
                    .collect()
            });
        match got {
            Ok(g) if g == want => {}
            Ok(g) => {
                bad += 1;
                let i = g
                    .iter()
                    .zip(&want)
                    .position(|(a, b)| a != b)
                    .unwrap_or(g.len().min(want.len()));
                println!(
                    "MISMATCH {} {s}\n   at #{i}: got {:?} want {:?} (lens {} {})",
                    start,
                    g.get(i),
                    want.get(i),
                    g.len(),
                    want.len()
                );
            }
            Err(e) => {
                bad += 1;
                println!("ERROR {} {s}: {e}", start);
            }
        }
    }
    println!("{bad}/{n} differ");
}
