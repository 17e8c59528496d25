//! The `kura` command: `kura serve` runs the server, `kura check` verifies, `kura user`
//! manages administrators, `kura promote` turns a running standby into a primary, `kura
//! backup` and `kura restore` take and restore backups.

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
    /// Make a development CA (or reuse the one in DIR) and a server certificate signed by it:
    /// ca.crt, ca.key, gs_node.crt, gs_node.key (the server reads gs_node.* and, for client
    /// certificates, ca.crt from `/system/securityPath`).
    Cert {
        /// Directory to write the files to.
        #[arg(long)]
        out: PathBuf,
        /// Extra host names or addresses the server certificate is valid for (besides
        /// localhost, 127.0.0.1 and ::1).
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Also make a client certificate for this user (NAME.crt, NAME.key), for
        /// `/security/clientCertificate`; may be repeated.
        #[arg(long = "client")]
        clients: Vec<String>,
    },
    /// Promote a running standby to primary: it applies everything it has received, starts a
    /// new epoch and takes writes (what `SELECT pg_promote()` on it does). The password comes
    /// from PGPASSWORD, else it is prompted for on a terminal.
    Promote {
        #[command(flatten)]
        server: ServerArgs,
        /// How long to wait for the promotion to finish.
        #[arg(long, default_value_t = 60, value_name = "SECONDS")]
        wait_seconds: u32,
    },
    /// Planned role swap with no data loss: fence the primary (it takes no more writes), wait
    /// until the standby has applied everything the primary wrote, then promote the standby.
    /// Restart the old primary with --standby-of the new one afterwards.
    Switchover {
        /// The primary, HOST:PORT.
        #[arg(long, value_name = "HOST:PORT")]
        primary: String,
        /// The standby to promote, HOST:PORT.
        #[arg(long, value_name = "HOST:PORT")]
        standby: String,
        #[command(flatten)]
        login: Login,
        /// How long to wait for the standby to catch up, and then to promote.
        #[arg(long, default_value_t = 60, value_name = "SECONDS")]
        wait_seconds: u32,
    },
    /// Server settings of a running server (GridDB's gs_paramconf): show them, or change one
    /// that can change online; the change lasts until the server stops.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// The statistics of a running server as JSON (GridDB's gs_stat): node status and role,
    /// memory, store and file sizes, checkpoints, log, connections, transactions, rows read
    /// and written, lock conflicts, recovery, backups. The password comes from PGPASSWORD.
    Stat {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Online backups (GridDB's gs_backup, gs_backuplist): take one on a running server,
    /// watch it, list the backup directory, verify a backup's files.
    Backup {
        #[command(subcommand)]
        action: BackupAction,
    },
    /// Restore a backup into an empty data directory (the server must be stopped), to its
    /// end or to a point in time; `--test` shows what would be used and checks it.
    Restore {
        /// The backup set to restore.
        name: String,
        /// Restore the commits made at or before this time: RFC 3339, or
        /// 'YYYY-MM-DD HH:MM:SS' in this machine's time zone.
        #[arg(long, conflicts_with = "until_lsn")]
        until: Option<String>,
        /// Restore the records up to and including this LSN.
        #[arg(long)]
        until_lsn: Option<u64>,
        /// Show the backups and log that would be used, and check them, without writing.
        #[arg(long)]
        test: bool,
        #[command(flatten)]
        location: BackupLocation,
    },
    /// Export tables (or the whole database, views included) from a running server into a
    /// new directory (GridDB's gs_export): one CSV or Parquet file per table, the definitions
    /// (kind, partitioning, expiry, indexes) in schema.sql and export.json, one snapshot.
    Export {
        /// The directory to write (new or empty).
        #[arg(long)]
        out: PathBuf,
        /// How rows are written.
        #[arg(long, value_enum, default_value = "csv")]
        format: kura::transfer::DataFormat,
        /// The tables to export (default: every table and view).
        tables: Vec<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Import an export directory into a running server (GridDB's gs_import): each table is
    /// created and loaded all or nothing; bad rows are reported with their line numbers.
    Import {
        /// The export directory.
        #[arg(long = "in", value_name = "DIR")]
        input: PathBuf,
        /// The tables to import (default: every table and view of the export).
        tables: Vec<String>,
        /// Load rows into existing tables; create nothing.
        #[arg(long)]
        data_only: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Manage administrators (the administrators' file, `/security/passwordFile`). The
    /// password is read from standard input (prompted for, without echo, on a terminal).
    User {
        #[command(subcommand)]
        action: UserAction,
        #[command(flatten)]
        location: Location,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Every server setting (or NAME): value, online or restart, where it came from.
    Show {
        /// A definition-file path such as /dataStore/storeMemoryLimit.
        name: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Change a setting that can change online (ALTER SYSTEM SET).
    Set {
        name: String,
        value: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Put a setting back to the value the server started with (ALTER SYSTEM RESET).
    Reset {
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Subcommand)]
enum BackupAction {
    /// Take a backup on a running server (prints progress on a terminal).
    Create {
        /// The backup set: 1 to 12 letters, digits or _.
        name: String,
        /// full (default), baseline, since, incremental, auto (full, then continuous log
        /// archiving) or auto_stop (stop archiving into NAME).
        #[arg(long, default_value = "full")]
        mode: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// What the running server's backup is doing.
    Status {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// The backup sets, newest first; with NAME, the backups of that set.
    List {
        name: Option<String>,
        #[command(flatten)]
        location: BackupLocation,
    },
    /// Re-read every file of a backup set and check digests, content and log continuity.
    Verify {
        name: String,
        #[command(flatten)]
        location: BackupLocation,
    },
}

/// Where the backups are: `--backup-path`, else the definition file's `/dataStore/backupPath`
/// under its data directory.
#[derive(clap::Args)]
struct BackupLocation {
    /// The backup directory.
    #[arg(long)]
    backup_path: Option<PathBuf>,
    #[command(flatten)]
    location: Location,
}

impl BackupLocation {
    fn config(&self) -> Result<Config, String> {
        let mut config = load_config(self.location.config.as_ref())?;
        if let Some(dir) = &self.location.data_dir {
            config.system.data_dir = dir.clone();
        }
        if let Some(path) = &self.backup_path {
            // Relative to where the command runs, not to the data directory.
            config.data_store.backup_path =
                std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(config)
    }
}

#[derive(Subcommand)]
enum UserAction {
    /// Add an administrator (named gs#NAME, or admin/system).
    Add { name: String },
    /// Remove an administrator.
    Del { name: String },
    /// Change an administrator's password.
    Passwd { name: String },
}

/// Where the server's files are: a definition file and/or a data directory.
#[derive(clap::Args)]
struct Location {
    /// Data directory (default: the definition file's, else ./kura-data).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// JSON definition file.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
}

/// A running server to talk to, as an administrator.
#[derive(clap::Args)]
struct ServerArgs {
    /// The server's host.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// The server's port.
    #[arg(long, short = 'p', default_value_t = 5433)]
    port: u16,
    #[command(flatten)]
    login: Login,
}

/// Who connects to running servers, and how.
#[derive(clap::Args)]
struct Login {
    /// The administrator to connect as.
    #[arg(long, short = 'U', default_value = "admin")]
    user: String,
    /// The database to connect to.
    #[arg(long, short = 'd', default_value = "public")]
    dbname: String,
    /// Connect over TLS and verify the server against this CA certificate.
    #[arg(long, value_name = "FILE")]
    sslrootcert: Option<PathBuf>,
}

impl Login {
    /// How to reach `host:port`; the password comes from PGPASSWORD, else a prompt on a
    /// terminal.
    fn options(self, host: String, port: u16) -> Result<kura::client::ClientOptions, String> {
        use std::io::IsTerminal;
        let password = match std::env::var("PGPASSWORD") {
            Ok(password) => Some(password),
            Err(_) if std::io::stdin().is_terminal() => Some(prompt_hidden("Password: ")?),
            Err(_) => None,
        };
        Ok(kura::client::ClientOptions {
            host,
            port,
            user: self.user,
            password,
            database: self.dbname,
            root_cert: self.sslrootcert,
        })
    }
}

fn host_port(address: &str) -> Result<(String, u16), String> {
    kura::config::split_host_port(address)
        .ok_or_else(|| format!("expected HOST:PORT, got {address:?}"))
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
    /// Serve /metrics and /health over HTTP on HOST:PORT (sets `/system/metricsAddress`;
    /// port 0 picks a free port).
    #[arg(long, value_name = "HOST:PORT")]
    metrics_listen: Option<String>,
    /// Run as a standby of the primary at HOST:PORT (sets `/cluster/standbyOf`).
    #[arg(long, value_name = "HOST:PORT")]
    standby_of: Option<String>,
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
        Command::User { action, location } => manage_admins(action, location),
        Command::Backup { action } => backup(action),
        Command::Config { action } => configure(action),
        Command::Stat { server } => server
            .login
            .options(server.host, server.port)
            .and_then(|options| kura::client::block_on(kura::stats::command::stat(&options)))
            .map(|json| println!("{json}")),
        Command::Export {
            out,
            format,
            tables,
            server,
        } => server
            .login
            .options(server.host, server.port)
            .and_then(|options| {
                let export = kura::transfer::export::ExportOptions {
                    dir: out,
                    format,
                    tables,
                };
                kura::client::block_on(kura::transfer::export::run(&options, &export))
            }),
        Command::Import {
            input,
            tables,
            data_only,
            server,
        } => server
            .login
            .options(server.host, server.port)
            .and_then(|options| {
                let import = kura::transfer::import::ImportOptions {
                    dir: input,
                    tables,
                    data_only,
                };
                kura::client::block_on(kura::transfer::import::run(&options, &import))
            }),
        Command::Restore {
            name,
            until,
            until_lsn,
            test,
            location,
        } => restore(&name, until.as_deref(), until_lsn, test, &location),
        Command::Promote {
            server,
            wait_seconds,
        } => server
            .login
            .options(server.host, server.port)
            .and_then(|options| kura::client::block_on(promote(options, wait_seconds))),
        Command::Switchover {
            primary,
            standby,
            login,
            wait_seconds,
        } => switchover(&primary, &standby, login, wait_seconds),
        Command::Cert {
            out,
            hosts,
            clients,
        } => kura::server::tls::make_development_certificates(&out, &hosts, &clients)
            .map(|written| {
                for file in written.files {
                    println!("kura: wrote {}", file.display());
                }
            })
            .map_err(describe),
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

fn check_data_dir(dir: &std::path::Path, repair: bool) -> Result<(), String> {
    kura::logs::init(None)?;
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
    // A standby re-executing itself after a checkpoint copy listens where it did before.
    let restarted_on = std::env::var(kura::replication::receiver::RESTART_LISTEN_ENV).ok();
    if let Some(listen) = restarted_on.as_ref().or(args.listen.as_ref()) {
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
    if let Some(metrics) = args.metrics_listen {
        config.system.metrics_address = metrics;
    }
    if let Some(primary) = args.standby_of {
        config.cluster.standby_of = primary;
    }
    config.system.test_clock = args.test_clock;
    config.validate().map_err(|e| e.to_string())?;
    kura::logs::init(Some(&config))?;
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
        if let Some(metrics) = server.metrics_addr() {
            println!("kura: metrics on http://{metrics}/metrics, health on http://{metrics}/health");
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

/// Promotes the standby at `options`; prints its new epoch.
async fn promote(options: kura::client::ClientOptions, wait_seconds: u32) -> Result<(), String> {
    let client = kura::client::connect(&options).await?;
    let wait_seconds = wait_seconds.max(1);
    let server = format!("{}:{}", options.host, options.port);
    let done: bool = client
        .query_one(&format!("SELECT pg_promote(true, {wait_seconds})"), &[])
        .await
        .map_err(kura::client::server_error)?
        .get(0);
    if !done {
        return Err(format!(
            "{server} did not finish its promotion within {wait_seconds} seconds"
        ));
    }
    let epoch = client
        .query_opt("SELECT epoch FROM pg_stat_wal_receiver", &[])
        .await
        .map_err(kura::client::server_error)?
        .map(|row| row.get::<_, i64>(0));
    match epoch {
        Some(epoch) => println!("kura: {server} is a primary now, in epoch {epoch}"),
        None => println!("kura: {server} is a primary now"),
    }
    Ok(())
}

fn switchover(primary: &str, standby: &str, login: Login, wait_seconds: u32) -> Result<(), String> {
    let (primary_host, primary_port) = host_port(primary)?;
    let (standby_host, standby_port) = host_port(standby)?;
    let standby_options = login.options(standby_host, standby_port)?;
    let primary_options = kura::client::ClientOptions {
        host: primary_host,
        port: primary_port,
        ..standby_options.clone()
    };
    kura::client::block_on(async move {
        let old = kura::client::connect(&primary_options).await?;
        let new = kura::client::connect(&standby_options).await?;
        let old_recovering: bool = old
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .map_err(kura::client::server_error)?
            .get(0);
        if old_recovering {
            return Err(format!("{primary} is a standby, not a primary"));
        }
        let new_status = new
            .query_opt("SELECT status FROM pg_stat_wal_receiver", &[])
            .await
            .map_err(kura::client::server_error)?
            .map(|row| row.get::<_, String>(0));
        if new_status.as_deref() != Some("streaming") {
            return Err(format!(
                "{standby} is not a standby streaming from its primary (status: {})",
                new_status.as_deref().unwrap_or("not a standby")
            ));
        }
        old.query_one("SELECT kura_fence()", &[])
            .await
            .map_err(kura::client::server_error)?;
        let last: i64 = old
            .query_one("SELECT pg_current_wal_lsn()", &[])
            .await
            .map_err(kura::client::server_error)?
            .get(0);
        println!("kura: {primary} is fenced; its log ends at LSN {last}");
        let deadline =
            std::time::Instant::now() + std::time::Duration::from_secs(u64::from(wait_seconds));
        loop {
            let applied: Option<i64> = new
                .query_one("SELECT pg_last_wal_replay_lsn()", &[])
                .await
                .map_err(kura::client::server_error)?
                .get(0);
            if applied.is_some_and(|lsn| lsn >= last) {
                break;
            }
            if std::time::Instant::now() >= deadline {
                return Err(format!(
                    "{standby} applied only through LSN {} of {last} within {wait_seconds} \
                     seconds; {primary} stays fenced (run `kura promote` on it to take writes \
                     again, or retry)",
                    applied.unwrap_or(0)
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        promote(standby_options, wait_seconds).await?;
        println!(
            "kura: switchover complete: {standby} has every commit through LSN {last}; restart \
             {primary} with --standby-of {standby} to make it a standby"
        );
        Ok(())
    })
}

fn backup(action: BackupAction) -> Result<(), String> {
    use kura::backup::command;
    match action {
        BackupAction::Create { name, mode, server } => {
            let mode = kura::backup::names::Mode::parse(&mode).map_err(describe)?;
            let options = server.login.options(server.host, server.port)?;
            let done = kura::client::block_on(command::create(&options, &name, mode))?;
            println!("kura: {done}");
        }
        BackupAction::Status { server } => {
            let options = server.login.options(server.host, server.port)?;
            println!("{}", kura::client::block_on(command::status(&options))?);
        }
        BackupAction::List { name, location } => {
            let dir = location.config()?.backup_dir();
            print!(
                "{}",
                command::list(&dir, name.as_deref()).map_err(describe)?
            );
        }
        BackupAction::Verify { name, location } => {
            let dir = location.config()?.backup_dir();
            let (report, sound) = command::verify(&dir, &name).map_err(describe)?;
            print!("{report}");
            if !sound {
                return Err(format!("backup {name} is damaged"));
            }
        }
    }
    Ok(())
}

fn configure(action: ConfigAction) -> Result<(), String> {
    use kura::config::command;
    let out = match action {
        ConfigAction::Show { name, server } => {
            let options = server.login.options(server.host, server.port)?;
            kura::client::block_on(command::show(&options, name.as_deref()))?
        }
        ConfigAction::Set {
            name,
            value,
            server,
        } => {
            let options = server.login.options(server.host, server.port)?;
            kura::client::block_on(command::set(&options, &name, Some(&value)))?
        }
        ConfigAction::Reset { name, server } => {
            let options = server.login.options(server.host, server.port)?;
            kura::client::block_on(command::set(&options, &name, None))?
        }
    };
    print!("{out}");
    Ok(())
}

fn restore(
    name: &str,
    until: Option<&str>,
    until_lsn: Option<u64>,
    test: bool,
    location: &BackupLocation,
) -> Result<(), String> {
    use kura::backup::{command, restore};
    let config = location.config()?;
    let target = match (until, until_lsn) {
        (Some(time), _) => restore::Target::Time(command::parse_time(time)?),
        (None, Some(lsn)) => restore::Target::Lsn(lsn),
        (None, None) => restore::Target::Latest,
    };
    let backup_dir = config.backup_dir();
    let plan = restore::plan(&backup_dir, name, target).map_err(describe)?;
    print!("{}", command::describe_plan(&plan, &backup_dir));
    if plan.short_of_target() {
        println!(
            "kura: warning: the backup's log ends before the target time; everything it holds \
             is restored"
        );
    }
    if test {
        println!("kura: --test: every file checked; nothing written");
        return Ok(());
    }
    let data_dir = &config.system.data_dir;
    let restored = restore::apply(&plan, data_dir).map_err(describe)?;
    println!(
        "kura: restored {name} into {} (checkpoint LSN {}, log to LSN {}); start the server on it",
        data_dir.display(),
        restored.checkpoint_lsn,
        restored.reach.lsn
    );
    Ok(())
}

fn manage_admins(action: UserAction, location: Location) -> Result<(), String> {
    use kura::security::admins;
    let mut config = load_config(location.config.as_ref())?;
    if let Some(dir) = location.data_dir {
        config.system.data_dir = dir;
    }
    let path = config.password_file();
    let encryption = config.security.password_encryption.into();
    let (done, name) = match action {
        UserAction::Add { name } => {
            kura::security::names::check_admin_name(&name).map_err(describe)?;
            let password = read_new_password()?;
            admins::add(&path, &name, &password, encryption).map_err(describe)?;
            ("added", name)
        }
        UserAction::Del { name } => {
            admins::delete(&path, &name).map_err(describe)?;
            ("removed", name)
        }
        UserAction::Passwd { name } => {
            let password = read_new_password()?;
            admins::set_password(&path, &name, &password, encryption).map_err(describe)?;
            ("changed the password of", name)
        }
    };
    println!(
        "kura: {done} administrator \"{name}\" in {}",
        path.display()
    );
    Ok(())
}

/// A new password: asked twice without echo on a terminal, else the first line of stdin.
fn read_new_password() -> Result<String, String> {
    use std::io::{BufRead, IsTerminal};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password: {e}"))?;
        let password = line.trim_end_matches(['\r', '\n']).to_string();
        if password.is_empty() {
            return Err("no password on standard input".into());
        }
        return Ok(password);
    }
    let first = prompt_hidden("New password: ")?;
    let second = prompt_hidden("Repeat it: ")?;
    if first != second {
        return Err("the passwords differ".into());
    }
    if first.is_empty() {
        return Err("empty password".into());
    }
    Ok(first)
}

/// Reads one line from the terminal with echo off.
fn prompt_hidden(prompt: &str) -> Result<String, String> {
    use std::io::BufRead;
    use std::os::fd::AsRawFd;
    print!("{prompt}");
    let _ = std::io::stdout().flush();
    let fd = std::io::stdin().as_raw_fd();
    // SAFETY: termios is plain data, filled by tcgetattr before use.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd is this process's stdin and saved points to a termios.
    let have_terminal = unsafe { libc::tcgetattr(fd, &mut saved) } == 0;
    if have_terminal {
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        // SAFETY: as above; quiet is a valid termios copied from the current one.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    }
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if have_terminal {
        // SAFETY: restores the settings read above.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    }
    println!();
    read.map_err(|e| format!("cannot read the password: {e}"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// An error with its hint, for the terminal.
fn describe(error: kura::KuraError) -> String {
    match &error.hint {
        Some(hint) => format!("{}\nhint: {hint}", error.message),
        None => error.message,
    }
}
