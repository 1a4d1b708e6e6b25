//! Scheduled backups of the embedded store (`backup.every`): a consistent online copy
//! (`VACUUM INTO`, readable by its owner only), then `PRAGMA integrity_check` on the copy, whose
//! result is kept beside it in a JSON sidecar (`<file>.json`), then grandfather-father-son
//! rotation of the scheduled backups (`backup.keep`). A failure at any step counts in
//! `qhronos_backup_failures_total` and is logged; a success sets
//! `qhronos_backup_last_success_timestamp_seconds`.
//!
//! SQLite only, and so one process: no upkeep lease. Startup refuses `backup.every` on
//! PostgreSQL (use `pg_dump`, docs/deployment.md). Rotation only ever deletes scheduled
//! backups (`qhronos-scheduled-*.db`), never those of `POST /admin/backup` in the same folder.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::config::{BackupConfig, BackupKeep};
use crate::domain::{now_ms, Millis};
use crate::metrics::Metrics;
use crate::store::Store;

/// File names of scheduled backups start with this.
pub const SCHEDULED_PREFIX: &str = "qhronos-scheduled-";

/// What the sidecar of a backup records, and what `GET /admin/backups` lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BackupInfo {
    /// The file name, inside the backup directory.
    pub file: String,
    /// When it was taken (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub taken_at: String,
    /// The same instant, ms since the epoch.
    pub taken_at_ms: Millis,
    /// Size of the file.
    pub bytes: u64,
    /// `PRAGMA integrity_check` of the copy: `ok`, or what it found. `null`: not checked (a
    /// backup taken by `POST /admin/backup`).
    pub integrity: Option<String>,
    /// Taken on schedule (and so subject to rotation).
    pub scheduled: bool,
}

/// The scheduled-backup job.
#[derive(Clone)]
pub struct Backups {
    /// The store copied (SQLite).
    pub store: Arc<dyn Store>,
    /// `backup.*`.
    pub config: BackupConfig,
    /// The backup directory (`backup.dir`, or `<data_dir>/backups`).
    pub dir: PathBuf,
    /// Failures and the last success.
    pub metrics: Arc<Metrics>,
}

impl Backups {
    /// One backup as of `now` (ms): written, checked, recorded, then the scheduled ones
    /// rotated. An integrity check that does not answer `ok` is an error (the file and its
    /// sidecar stay, for inspection).
    pub async fn run_once(&self, now: Millis) -> anyhow::Result<BackupInfo> {
        crate::store::private_file::create_dir(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let at = Timestamp::from_millisecond(now)?;
        let file = format!("{SCHEDULED_PREFIX}{}.db", at.strftime("%Y%m%dT%H%M%S%.3fZ"));
        let path = self.dir.join(&file);
        // Written and checked under a name the listing ignores, then renamed with its sidecar
        // in place: a listed scheduled backup is always complete and checked.
        let partial = self.dir.join(format!("{file}.partial"));
        let _ = std::fs::remove_file(&partial);
        self.store
            .backup_to(&partial)
            .await
            .with_context(|| format!("backup to {} failed", partial.display()))?;
        let integrity = match crate::store::sqlite::integrity_check(&partial).await {
            Ok(r) => r,
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                return Err(anyhow::Error::new(e)
                    .context(format!("integrity check of {} failed", partial.display())));
            }
        };
        let info = BackupInfo {
            file,
            taken_at: crate::domain::fmt_ms(now),
            taken_at_ms: now,
            bytes: std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0),
            integrity: Some(integrity.clone()),
            scheduled: true,
        };
        let sidecar = sidecar(&path);
        std::fs::write(&sidecar, serde_json::to_vec_pretty(&info)?)
            .with_context(|| format!("cannot write {}", sidecar.display()))?;
        std::fs::rename(&partial, &path)
            .with_context(|| format!("cannot rename {} into place", partial.display()))?;
        if integrity != "ok" {
            anyhow::bail!("integrity check of {} found: {integrity}", path.display());
        }
        self.rotate()?;
        Ok(info)
    }

    /// Deletes the scheduled backups (and sidecars) that `backup.keep` does not keep.
    fn rotate(&self) -> anyhow::Result<()> {
        let scheduled: Vec<BackupInfo> = list(&self.dir)?
            .into_iter()
            .filter(|b| b.scheduled)
            .collect();
        let times: Vec<Millis> = scheduled.iter().map(|b| b.taken_at_ms).collect();
        for (b, keep) in scheduled.iter().zip(kept(&times, self.config.keep)) {
            if !keep {
                let path = self.dir.join(&b.file);
                std::fs::remove_file(&path)
                    .with_context(|| format!("cannot delete {}", path.display()))?;
                let _ = std::fs::remove_file(sidecar(&path));
                tracing::info!(file = %b.file, "backup rotated out");
            }
        }
        Ok(())
    }

    /// A backup every `backup.every` (the first one interval after start) until aborted.
    pub async fn run(self) {
        let Some(every) = self.config.every else {
            return;
        };
        loop {
            tokio::time::sleep(every.0).await;
            match self.run_once(now_ms()).await {
                Ok(info) => {
                    self.metrics
                        .backup_last_success
                        .set(info.taken_at_ms as f64 / 1000.0);
                    tracing::info!(file = %info.file, bytes = info.bytes, "scheduled backup taken");
                }
                Err(e) => {
                    self.metrics.backup_failures.inc();
                    tracing::error!(error = format!("{e:#}"), dir = %self.dir.display(), "scheduled backup failed");
                }
            }
        }
    }
}

fn sidecar(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".json");
    PathBuf::from(s)
}

/// The backups in `dir` (`qhronos-*.db`), newest first, with what their sidecars recorded; a
/// folder that does not exist holds none.
pub fn list(dir: &Path) -> std::io::Result<Vec<BackupInfo>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("qhronos-") || !name.ends_with(".db") {
            continue;
        }
        let meta = entry.metadata()?;
        if !meta.is_file() {
            continue;
        }
        let recorded: Option<BackupInfo> = std::fs::read(sidecar(&entry.path()))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let info = match recorded {
            Some(r) => BackupInfo {
                file: name,
                bytes: meta.len(),
                ..r
            },
            None => {
                let at = meta
                    .modified()
                    .ok()
                    .and_then(|t| Timestamp::try_from(t).ok())
                    .map(|t| t.as_millisecond())
                    .unwrap_or(0);
                BackupInfo {
                    scheduled: name.starts_with(SCHEDULED_PREFIX),
                    file: name,
                    taken_at: crate::domain::fmt_ms(at),
                    taken_at_ms: at,
                    bytes: meta.len(),
                    integrity: None,
                }
            }
        };
        out.push(info);
    }
    out.sort_by(|a, b| b.taken_at_ms.cmp(&a.taken_at_ms).then(b.file.cmp(&a.file)));
    Ok(out)
}

/// The day, ISO week or month a backup time falls in (`None`: out of range).
type Bucket<'a> = dyn Fn(Millis) -> Option<(i16, i16, i16)> + 'a;

/// Which of these backup times (ms, newest first) grandfather-father-son rotation keeps: the
/// newest of each of the `daily` latest days that have one, of each of the `weekly` latest ISO
/// weeks, of each of the `monthly` latest months (UTC); and always the newest.
pub fn kept(times: &[Millis], keep: BackupKeep) -> Vec<bool> {
    let mut out = vec![false; times.len()];
    if let Some(first) = out.first_mut() {
        *first = true;
    }
    let date = |t: Millis| {
        Timestamp::from_millisecond(t)
            .map(|t| t.to_zoned_datetime(jiff::tz::TimeZone::UTC).date())
            .ok()
    };
    let day = |t: Millis| date(t).map(|d| (d.year(), d.month() as i16, d.day() as i16));
    let week = |t: Millis| {
        date(t).map(|d| {
            let w = d.iso_week_date();
            (w.year(), w.week() as i16, 0)
        })
    };
    let month = |t: Millis| date(t).map(|d| (d.year(), d.month() as i16, 0));
    let rules: [(u32, &Bucket<'_>); 3] = [
        (keep.daily, &day),
        (keep.weekly, &week),
        (keep.monthly, &month),
    ];
    for (limit, key) in rules {
        let mut seen = Vec::new();
        for (i, t) in times.iter().enumerate() {
            let k = key(*t);
            if seen.contains(&k) {
                continue;
            }
            if seen.len() as u32 >= limit {
                break;
            }
            seen.push(k);
            out[i] = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Millis = 86_400_000;
    /// 2030-01-01T12:00:00Z, a Tuesday.
    const T: Millis = 1_893_499_200_000;

    #[test]
    fn rotation_keeps_the_newest_of_each_day_week_and_month() {
        // Two backups a day for 70 days, newest first.
        let times: Vec<Millis> = (0..140).rev().map(|i| T + i * DAY / 2).collect();
        let keep = BackupKeep {
            daily: 3,
            weekly: 2,
            monthly: 2,
        };
        let k = kept(&times, keep);
        let kept_times: Vec<Millis> = times
            .iter()
            .zip(&k)
            .filter(|(_, k)| **k)
            .map(|(t, _)| *t)
            .collect();
        // The newest three days (the later backup of each), the newest of last week and of
        // the month before: each the first (newest) of its bucket.
        let newest = times[0];
        assert_eq!(
            kept_times[..3],
            [newest, newest - DAY / 2, newest - 3 * DAY / 2]
        );
        assert!(kept_times.len() <= 3 + 2 + 2);
        assert!(kept_times.len() >= 4, "{kept_times:?}");
        // Every kept one is the newest of its day.
        for t in &kept_times {
            let later_same_day = times.iter().any(|u| u > t && date_of(*u) == date_of(*t));
            assert!(!later_same_day, "{t} is not the newest of its day");
        }
        // A month back, the newest backup of the earlier month stays.
        let m = |t: Millis| date_of(t).month();
        let months: std::collections::BTreeSet<_> = kept_times.iter().map(|t| m(*t)).collect();
        assert_eq!(months.len(), 2, "{kept_times:?}");
    }

    #[test]
    fn rotation_with_nothing_to_keep_still_keeps_the_newest() {
        let k = kept(
            &[T + 2, T + 1, T],
            BackupKeep {
                daily: 0,
                weekly: 0,
                monthly: 0,
            },
        );
        assert_eq!(k, vec![true, false, false]);
        assert!(kept(&[], BackupKeep::default()).is_empty());
    }

    fn date_of(t: Millis) -> jiff::civil::Date {
        Timestamp::from_millisecond(t)
            .expect("time")
            .to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .date()
    }
}
