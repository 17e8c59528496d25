//! The `kura` command: `kura serve` runs the server; later subcommands (backup, restore, user)
//! join it here.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use kura::config::Config;
use kura::server::Server;

#[derive(Parser)]
#[command(
    name = "kura",
    version,
    about = "Kura: a SQL-first NewSQL database server speaking the PostgreSQL protocol"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the server (embedded defaults: 127.0.0.1:5433, data directory ./kura-data).
    Serve(ServeArgs),
    /// Check a configuration file (print the effective settings) or, offline, a data
    /// directory (verify every checkpoint and log segment).
    Check {
        /// The JSON definition file to check.
        #[arg(long, required_unless_present = "data_dir")]
        config: Option<PathBuf>,
        /// The data directory to verify (the server must be stopped).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Cut a damaged transaction log at its first bad byte (later segments are moved to
        /// txnlog/discarded/).
        #[arg(long, requires = "data_dir")]
        repair: bool,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on, HOST:PORT (port 0 picks a free port).
    #[arg(long)]
    listen: Option<String>,
    /// Data directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// JSON definition file (see conf/kura.json); defaults apply without one.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Lets `SET kura.test_clock` move the server clock (for tests only).
    #[arg(long, hide = true)]
    test_clock: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Check {
            config,
            data_dir,
            repair,
        } => match data_dir {
            Some(dir) => check_data_dir(&dir, repair),
            None => config.map_or(Ok(()), |config| check(&config)),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("kura: {message}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(path: Option<&PathBuf>) -> Result<Config, String> {
    match path {
        Some(path) => Config::load(path).map_err(|e| format!("{}: {e}", path.display())),
        None => Ok(Config::default()),
    }
}

fn check(path: &PathBuf) -> Result<(), String> {
    let config = load_config(Some(path))?;
    let text = serde_json::to_string_pretty(&config).map_err(|e| e.to_string())?;
    println!("{text}");
    Ok(())
}

/// Logs to stderr and, for the server, to the event log: daily files `kura-event.log.DATE`
/// in `event_log_dir`. `KURA_LOG` sets the level (tracing `EnvFilter` syntax).
fn init_logging(event_log_dir: Option<&std::path::Path>) -> Result<(), String> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_env("KURA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let stderr = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let event_log = match event_log_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create event log directory {}: {e}", dir.display()))?;
            let appender = tracing_appender::rolling::daily(dir, "kura-event.log");
            Some(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(appender),
            )
        }
        None => None,
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(stderr)
        .with(event_log)
        .try_init()
        .map_err(|e| format!("cannot start logging: {e}"))
}

fn check_data_dir(dir: &std::path::Path, repair: bool) -> Result<(), String> {
    init_logging(None)?;
    let report = kura::check::check_data_dir(dir, repair).map_err(describe)?;
    print!("{}", report.text);
    if report.problems > 0 {
        let advice = if repair {
            ""
        } else {
            " (run again with --repair to cut the log at the damage)"
        };
        return Err(format!("{} problems found{advice}", report.problems));
    }
    Ok(())
}

fn serve(args: ServeArgs) -> Result<(), String> {
    let mut config = load_config(args.config.as_ref())?;
    if let Some(listen) = &args.listen {
        let (host, port) = listen
            .rsplit_once(':')
            .ok_or_else(|| format!("--listen expects HOST:PORT, got {listen:?}"))?;
        config.system.service_address = host.trim_matches(['[', ']']).to_string();
        config.system.service_port = port
            .parse()
            .map_err(|_| format!("invalid port in --listen {listen:?}"))?;
    }
    if let Some(dir) = args.data_dir {
        config.system.data_dir = dir;
    }
    config.system.test_clock = args.test_clock;
    config.validate().map_err(|e| e.to_string())?;
    init_logging(Some(&config.system.event_log_dir()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // DataFusion plans and evaluates expressions recursively; a deeply nested query must
        // not overflow a worker's stack.
        .thread_stack_size(8 * 1024 * 1024)
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        // A write past RLIMIT_FSIZE must fail with EFBIG (reported to the client, like a full
        // disk) instead of killing the server; a registered handler makes that so.
        let _file_size_limit =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(libc::SIGXFSZ))
                .map_err(|e| format!("cannot handle SIGXFSZ: {e}"))?;
        let server = Server::bind(config).await.map_err(describe)?;
        let address = server.local_addr().map_err(describe)?;
        if let Some(password) = server.generated_admin_password() {
            // Shown once, on the terminal only: never in the event log.
            println!(
                "kura: created administrator \"{}\" with password {password} (set {} before the first start to choose it)",
                kura::security::admins::DEFAULT_ADMIN,
                kura::security::admins::PASSWORD_ENV
            );
        }
        println!("kura {} listening on {address}", env!("CARGO_PKG_VERSION"));
        let _ = std::io::stdout().flush();
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .map_err(|e| format!("cannot watch for SIGTERM: {e}"))?;
        tokio::select! {
            result = server.run() => result.map_err(describe)?,
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        println!("kura: shutting down");
        let _ = std::io::stdout().flush();
        server.shutdown().await.map_err(describe)
    })
}

/// An error with its hint, for the terminal.
fn describe(error: kura::KuraError) -> String {
    match &error.hint {
        Some(hint) => format!("{}\nhint: {hint}", error.message),
        None => error.message,
    }
}
