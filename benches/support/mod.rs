//! Helpers the benches share: error plumbing, environment settings, finding the `kura` binary,
//! reading its readiness line, time limits and number formatting; in submodules, spawning and
//! talking to a server ([`server`]) and printing result tables ([`report`]).
//!
//! Each bench includes this file with `mod support;`; nothing here is a bench target itself.
//! Not every bench uses every helper of the submodules, hence their `allow(dead_code)`.

use std::error::Error;
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

#[allow(dead_code)]
pub mod report;
#[allow(dead_code)]
pub mod server;

pub type BoxError = Box<dyn Error + Send + Sync>;
pub type Result<T, E = BoxError> = std::result::Result<T, E>;

/// Adds a message in front of an error, so that a failure names what was being done.
pub trait Context<T> {
    fn context(self, what: impl Display) -> Result<T>;
}

impl<T, E: Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl Display) -> Result<T> {
        self.map_err(|e| format!("{what}: {e}").into())
    }
}

pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

pub fn env_parse<T: FromStr>(name: &str, default: T) -> Result<T>
where
    T::Err: Display,
{
    match env_var(name) {
        None => Ok(default),
        Some(v) => v.trim().parse().context(format!("{name}={v:?}")),
    }
}

/// Where the `kura` binary is: `KURA_BENCH_BIN`, the binary Cargo built for this bench, or
/// `target/{release,debug}/kura` under the manifest directory or `CARGO_TARGET_DIR`.
pub fn find_kura_binary() -> Result<PathBuf> {
    if let Some(path) = env_var("KURA_BENCH_BIN") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("KURA_BENCH_BIN={} is not a file", path.display()).into())
        };
    }
    let mut candidates = Vec::new();
    if let Some(built) = option_env!("CARGO_BIN_EXE_kura") {
        candidates.push(PathBuf::from(built));
    }
    let mut target_dirs = Vec::new();
    if let Some(dir) = env_var("CARGO_TARGET_DIR") {
        target_dirs.push(PathBuf::from(dir));
    }
    target_dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    for dir in &target_dirs {
        for profile in ["release", "debug"] {
            candidates.push(dir.join(profile).join("kura"));
        }
    }
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        format!(
            "no kura binary found under {}; run `cargo build --release` first, set KURA_BENCH_BIN, \
             or set KURA_BENCH_URL to bench another server",
            target_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(" or ")
        )
        .into()
    })
}

/// Extracts `(host, port)` from a line such as `... listening on 127.0.0.1:54321`.
pub fn parse_listening(line: &str) -> Option<(String, u16)> {
    let rest = &line[line.find("listening on ")? + "listening on ".len()..];
    let addr = rest
        .split_whitespace()
        .next()?
        .trim_end_matches([',', ';', '.', ')']);
    let (host, port) = addr.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = match host {
        "0.0.0.0" | "" => "127.0.0.1",
        "::" => "::1",
        h => h,
    };
    Some((host.to_owned(), port.parse().ok()?))
}

/// Awaits `fut` for at most `limit`; errors (and time-outs) are prefixed with `what`.
pub async fn timed<T, E: Display>(
    limit: Duration,
    what: &str,
    fut: impl Future<Output = std::result::Result<T, E>>,
) -> Result<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(result) => result.context(what),
        Err(_) => Err(format!("{what}: no answer within {limit:?}").into()),
    }
}

pub fn group_digits(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (k, c) in digits.chars().enumerate() {
        if k > 0 && (digits.len() - k).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The multi-threaded runtime a bench drives its clients on (`wire` builds its own).
#[allow(dead_code)]
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")
}

/// Waits for every client task; their outputs in order, or the first error any of them met
/// (every task is awaited either way, so none is left running).
pub async fn join_all<T>(handles: Vec<tokio::task::JoinHandle<Result<T>>>) -> Result<Vec<T>> {
    let mut outputs = Vec::with_capacity(handles.len());
    let mut first_error = None;
    for handle in handles {
        match handle.await {
            Ok(Ok(output)) => outputs.push(output),
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert_with(|| format!("client task failed: {e}").into());
            }
        }
    }
    first_error.map_or(Ok(outputs), Err)
}
