//! Backup names and modes (GridDB's gs_backup): a backup *set* is named by the operator
//! (letters, digits and `_`, at most 12 characters); each backup taken into it is a *backup
//! data* directory `NAME_lv0` (the full backup or baseline) or `NAME_lv1_NNN_MMM` (NNN counts
//! cumulative `since` backups, MMM the `incremental` ones after the last of them).
//!
//! Invariant: a name that passes [`check_set_name`] is a single, safe path component.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{KuraError, Result, sqlstate};

/// GridDB's limit on backup names.
pub const MAX_NAME_LEN: usize = 12;

/// Checks a backup set name against GridDB's rule.
pub fn check_set_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(KuraError::new(
            sqlstate::INVALID_NAME,
            format!("invalid backup name \"{name}\": use 1 to {MAX_NAME_LEN} letters, digits or _"),
        ))
    }
}

/// What kind of backup is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// A full backup: the set holds this one backup.
    Full,
    /// A full backup that later `since` and `incremental` backups build on (level 0).
    Baseline,
    /// The partitions changed since the baseline (level 1, cumulative).
    Since,
    /// The partitions changed since the set's previous backup (level 1, differential).
    Incremental,
    /// A full backup, then every log record archived into the set as it is written.
    Auto,
    /// Stops the archiving of an `auto` set (takes no backup).
    AutoStop,
}

impl Mode {
    pub fn parse(text: &str) -> Result<Mode> {
        Ok(match text.trim().to_ascii_lowercase().as_str() {
            "" | "full" => Mode::Full,
            "baseline" => Mode::Baseline,
            "since" => Mode::Since,
            "incremental" => Mode::Incremental,
            "auto" => Mode::Auto,
            "auto_stop" => Mode::AutoStop,
            other => {
                return Err(KuraError::new(
                    sqlstate::INVALID_PARAMETER_VALUE,
                    format!(
                        "unknown backup mode \"{other}\": use full, baseline, since, \
                         incremental, auto or auto_stop"
                    ),
                ));
            }
        })
    }

    /// Whether this mode starts a new set (level 0).
    pub fn starts_set(self) -> bool {
        matches!(self, Mode::Full | Mode::Baseline | Mode::Auto)
    }

    /// GridDB's name for the operation (gs_stat's `mode`).
    pub fn operation(self) -> &'static str {
        match self {
            Mode::Full | Mode::Auto | Mode::AutoStop => "BACKUP",
            Mode::Baseline => "INCREMENTAL_BACKUP_LEVEL_0",
            Mode::Since => "INCREMENTAL_BACKUP_LEVEL_1_CUMULATIVE",
            Mode::Incremental => "INCREMENTAL_BACKUP_LEVEL_1_DIFFERENTIAL",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Full => "full",
            Mode::Baseline => "baseline",
            Mode::Since => "since",
            Mode::Incremental => "incremental",
            Mode::Auto => "auto",
            Mode::AutoStop => "auto_stop",
        })
    }
}

/// Where a backup data directory stands in its set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Level {
    /// Cumulative (`since`) backups before it, counting itself if it is one.
    pub since: u32,
    /// Incremental backups after the last cumulative one, counting itself.
    pub incremental: u32,
    /// Level 0: the baseline or full backup.
    pub base: bool,
}

impl Level {
    pub const BASE: Level = Level {
        since: 0,
        incremental: 0,
        base: true,
    };

    pub fn data_name(self, set: &str) -> String {
        if self.base {
            format!("{set}_lv0")
        } else {
            format!("{set}_lv1_{:03}_{:03}", self.since, self.incremental)
        }
    }

    /// Reads a data directory's name back (`None` for anything else in the set).
    pub fn from_data_name(set: &str, name: &str) -> Option<Level> {
        let rest = name.strip_prefix(set)?.strip_prefix('_')?;
        if rest == "lv0" {
            return Some(Level::BASE);
        }
        let numbers = rest.strip_prefix("lv1_")?;
        let (since, incremental) = numbers.split_once('_')?;
        let number = |s: &str| (s.len() == 3).then(|| s.parse::<u32>().ok()).flatten();
        Some(Level {
            since: number(since)?,
            incremental: number(incremental)?,
            base: false,
        })
    }

    /// The level a new `since` (cumulative) or `incremental` backup after `newest` takes.
    pub fn next(newest: Level, mode: Mode) -> Level {
        if mode == Mode::Since {
            Level {
                since: newest.since + 1,
                incremental: 0,
                base: false,
            }
        } else {
            Level {
                since: newest.since,
                incremental: newest.incremental + 1,
                base: false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_griddb_rules() {
        for good in ["201504", "a_b", "ABCDEFGHIJKL"] {
            check_set_name(good).unwrap();
        }
        for bad in ["", "ABCDEFGHIJKLM", "a-b", "../x", "a b", "ä"] {
            assert_eq!(
                check_set_name(bad).unwrap_err().code,
                sqlstate::INVALID_NAME
            );
        }
    }

    #[test]
    fn levels_count_like_gs_backup() {
        let lv0 = Level::BASE;
        assert_eq!(lv0.data_name("s"), "s_lv0");
        let inc1 = Level::next(lv0, Mode::Incremental);
        assert_eq!(inc1.data_name("s"), "s_lv1_000_001");
        let since1 = Level::next(inc1, Mode::Since);
        assert_eq!(since1.data_name("s"), "s_lv1_001_000");
        let inc2 = Level::next(since1, Mode::Incremental);
        assert_eq!(inc2.data_name("s"), "s_lv1_001_001");
        for level in [lv0, inc1, since1, inc2] {
            assert_eq!(
                Level::from_data_name("s", &level.data_name("s")),
                Some(level)
            );
        }
        assert!(lv0 < inc1 && inc1 < since1 && since1 < inc2);
        assert_eq!(Level::from_data_name("s", "s_lv1_1_1"), None);
        assert_eq!(Level::from_data_name("s", "archive"), None);
        assert!(Mode::parse("nonsense").is_err());
        assert_eq!(Mode::parse("INCREMENTAL").unwrap(), Mode::Incremental);
    }
}
