//! The private PostgreSQL zegolog runs when no database URL is given.
//!
//! It uses the PostgreSQL server binaries already installed on the machine (found on `PATH`,
//! through `pg_config --bindir`, or under `/usr/lib/postgresql/*/bin`), keeps its cluster under
//! `<data dir>/postgres`, listens on 127.0.0.1 only (no Unix socket), and requires a password
//! that is generated at `initdb` and kept in `<data dir>/pgpass` (mode 0600) for `psql`.
//! `initdb` and `postgres` refuse to run as root, so when zegolog is root the cluster belongs to
//! the unprivileged user `postgres` (or `nobody` where there is none).
//!
//! The server is started with `pg_ctl`: if zegolog dies without stopping it, the next start finds
//! it running and uses it.

use std::fs;
use std::io::{self, Write};
use std::net::TcpListener;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nix::unistd::{Gid, Uid, User};
use rand::Rng;

/// The role and database the embedded cluster serves.
pub const NAME: &str = "zegolog";

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "no PostgreSQL server binaries found (looked for initdb and pg_ctl on PATH, in \
         `pg_config --bindir` and under /usr/lib/postgresql/*/bin). Either install the \
         PostgreSQL server (Debian/Ubuntu: `apt-get install postgresql`), or set DATABASE_URL \
         (or --database-url) to a PostgreSQL database zegolog can use"
    )]
    NotFound,
    #[error("running as root, but there is no unprivileged user (`postgres` or `nobody`) to run PostgreSQL as")]
    NoUser,
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("`{command}` failed ({status}){hint}:\n{output}")]
    Command {
        command: String,
        status: String,
        output: String,
        hint: String,
    },
}

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> EmbeddedError {
    let what = what.into();
    move |source| EmbeddedError::Io { what, source }
}

/// How a server differs from zegolog's own private one, for the servers the tools and tests run
/// (a local Citus cluster's nodes): lines appended to `postgresql.conf` at `initdb`, and a
/// password given rather than generated, which the server itself then also uses to reach the
/// other servers of its cluster (a `pgpass` file of the cluster's owner, named by `PGPASSFILE`).
#[derive(Debug, Clone, Default)]
pub struct ServerSettings {
    pub conf: String,
    pub password: Option<String>,
}

/// A running private PostgreSQL.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    bindir: PathBuf,
    data_dir: PathBuf,
    pgdata: PathBuf,
    port: u16,
    password: String,
    owner: Option<User>,
}

impl EmbeddedPostgres {
    /// Starts (creating on first use) the cluster under `data_dir`, and makes sure the
    /// `zegolog` database exists. Blocking: it runs `initdb`, `pg_ctl` and `createdb`.
    pub fn start(data_dir: &Path) -> Result<Self, EmbeddedError> {
        Self::start_with(data_dir, &ServerSettings::default())
    }

    /// [`start`](Self::start) with these settings (used when the cluster is created).
    pub fn start_with(data_dir: &Path, settings: &ServerSettings) -> Result<Self, EmbeddedError> {
        let bindir = find_bindir()?;
        let owner = if Uid::effective().is_root() {
            Some(unprivileged_user()?)
        } else {
            None
        };
        fs::create_dir_all(data_dir)
            .map_err(io_error(format!("creating {}", data_dir.display())))?;
        let data_dir = fs::canonicalize(data_dir)
            .map_err(io_error(format!("resolving {}", data_dir.display())))?;
        let pgdata = data_dir.join("postgres");
        let mut pg = Self {
            bindir,
            pgdata,
            port: 0,
            password: String::new(),
            owner,
            data_dir,
        };
        if !pg.pgdata.join("PG_VERSION").exists() {
            pg.initdb(settings)?;
        }
        pg.password = pg.read_password()?;
        pg.port = match pg.running_port() {
            Some(port) => {
                tracing::info!(port, "the private PostgreSQL is already running; using it");
                port
            }
            None => pg.pg_ctl_start()?,
        };
        pg.create_database()?;
        Ok(pg)
    }

    /// A connection URL for the `zegolog` database (it holds the password: do not log it).
    pub fn url(&self) -> String {
        format!(
            "postgres://{NAME}:{}@127.0.0.1:{}/{NAME}",
            self.password, self.port
        )
    }

    /// The same server, another database.
    pub fn url_for(&self, database: &str) -> String {
        format!(
            "postgres://{NAME}:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// The command an analyst runs to connect (the password stays in the pgpass file).
    pub fn psql_command(&self) -> String {
        format!(
            "PGPASSFILE={} psql -h 127.0.0.1 -p {} -U {NAME} {NAME}",
            self.pgpass_path().display(),
            self.port
        )
    }

    /// Lets the server's own outgoing connections (a Citus coordinator's to its workers) log
    /// in as `role` with `password`: a line in its peers' password file. Only for a server
    /// started with [`ServerSettings::password`].
    pub fn add_peer_password(&self, role: &str, password: &str) -> Result<(), EmbeddedError> {
        let path = self.server_pgpass_path();
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_error(format!("opening {}", path.display())))?;
        file.write_all(format!("*:*:*:{role}:{password}\n").as_bytes())
            .map_err(io_error(format!("writing {}", path.display())))
    }

    /// Stops the server (fast shutdown: open transactions are rolled back, data is kept).
    pub fn stop(&self) -> Result<(), EmbeddedError> {
        self.pg_ctl(&["stop", "-m", "fast", "-w", "-t", "60"])
            .map(drop)
    }

    /// Starts the server again after [`stop`](Self::stop), on the same port.
    pub fn restart(&mut self) -> Result<(), EmbeddedError> {
        self.port = self.pg_ctl_start()?;
        Ok(())
    }

    fn pgpass_path(&self) -> PathBuf {
        self.data_dir.join("pgpass")
    }

    fn port_path(&self) -> PathBuf {
        self.data_dir.join("postgres.port")
    }

    /// The password file the server's own outgoing connections read (cluster nodes only).
    fn server_pgpass_path(&self) -> PathBuf {
        self.pgdata.join("peers.pgpass")
    }

    fn initdb(&self, settings: &ServerSettings) -> Result<(), EmbeddedError> {
        tracing::info!(pgdata = %self.pgdata.display(), "creating the private PostgreSQL cluster");
        fs::create_dir_all(&self.pgdata)
            .map_err(io_error(format!("creating {}", self.pgdata.display())))?;
        fs::set_permissions(&self.pgdata, fs::Permissions::from_mode(0o700))
            .map_err(io_error("setting the cluster directory's mode"))?;
        self.give_to_owner(&self.pgdata)?;

        let password = match &settings.password {
            Some(password) => password.clone(),
            None => hex::encode(rand::thread_rng().gen::<[u8; 24]>()),
        };
        let pwfile = self.data_dir.join(".initdb-password");
        write_private(&pwfile, &password)?;
        self.give_to_owner(&pwfile)?;
        let result = self.run(
            "initdb",
            &[
                "-D".as_ref(),
                self.pgdata.as_os_str(),
                "-U".as_ref(),
                NAME.as_ref(),
                "--pwfile".as_ref(),
                pwfile.as_os_str(),
                "--auth=scram-sha-256".as_ref(),
                "--encoding=UTF8".as_ref(),
                "--no-locale".as_ref(),
            ],
        );
        let _ = fs::remove_file(&pwfile);
        result?;

        let mut conf = fs::OpenOptions::new()
            .append(true)
            .open(self.pgdata.join("postgresql.conf"))
            .map_err(io_error("opening postgresql.conf"))?;
        conf.write_all(
            b"\n# zegolog: a private server, reachable from this machine only.\n\
              listen_addresses = '127.0.0.1'\n\
              unix_socket_directories = ''\n",
        )
        .map_err(io_error("writing postgresql.conf"))?;
        conf.write_all(format!("\n{}\n", settings.conf).as_bytes())
            .map_err(io_error("writing postgresql.conf"))?;
        if settings.password.is_some() {
            let peers = self.server_pgpass_path();
            write_private(&peers, &format!("*:*:*:{NAME}:{password}\n"))?;
            self.give_to_owner(&peers)?;
        }
        write_private(&self.pgpass_path(), &format!("*:*:*:{NAME}:{password}\n"))
    }

    fn read_password(&self) -> Result<String, EmbeddedError> {
        let text = fs::read_to_string(self.pgpass_path()).map_err(io_error(format!(
            "reading {}",
            self.pgpass_path().display()
        )))?;
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("*:*:*:{NAME}:")))
            .map(str::to_owned)
            .ok_or_else(|| EmbeddedError::Io {
                what: format!("reading {}", self.pgpass_path().display()),
                source: io::Error::new(io::ErrorKind::InvalidData, "no zegolog password line"),
            })
    }

    /// The port of a server already running on this cluster, read from `postmaster.pid`.
    fn running_port(&self) -> Option<u16> {
        self.pg_ctl(&["status"]).ok()?;
        let pid_file = fs::read_to_string(self.pgdata.join("postmaster.pid")).ok()?;
        pid_file.lines().nth(3)?.trim().parse().ok()
    }

    /// Starts the server on the port it had last time if that is free, else on a free one.
    fn pg_ctl_start(&self) -> Result<u16, EmbeddedError> {
        let previous = fs::read_to_string(self.port_path())
            .ok()
            .and_then(|p| p.trim().parse::<u16>().ok());
        let port = match previous {
            Some(port) if TcpListener::bind(("127.0.0.1", port)).is_ok() => port,
            _ => free_port()?,
        };
        fs::write(self.port_path(), format!("{port}\n"))
            .map_err(io_error("writing the port file"))?;
        let log = self.pgdata.join("server.log");
        let options = format!("-p {port}");
        let mut command = self.command("pg_ctl");
        if self.server_pgpass_path().exists() {
            command.env("PGPASSFILE", self.server_pgpass_path());
        }
        self.run_command(
            command,
            "pg_ctl",
            &[
                "-D".as_ref(),
                self.pgdata.as_os_str(),
                "start".as_ref(),
                "-w".as_ref(),
                "-t".as_ref(),
                "120".as_ref(),
                "-l".as_ref(),
                log.as_os_str(),
                "-o".as_ref(),
                options.as_ref(),
            ],
        )?;
        tracing::info!(port, "private PostgreSQL started");
        Ok(port)
    }

    fn create_database(&self) -> Result<(), EmbeddedError> {
        let port = self.port.to_string();
        let output = self
            .command("createdb")
            .args(["-h", "127.0.0.1", "-p", &port, "-U", NAME, NAME])
            .env("PGPASSFILE", self.pgpass_path())
            .output()
            .map_err(io_error("running createdb"))?;
        if output.status.success()
            || String::from_utf8_lossy(&output.stderr).contains("already exists")
        {
            Ok(())
        } else {
            Err(command_error("createdb", &output, ""))
        }
    }

    fn pg_ctl<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Result<Output, EmbeddedError> {
        let mut full: Vec<&std::ffi::OsStr> = vec!["-D".as_ref(), self.pgdata.as_os_str()];
        full.extend(args.iter().map(AsRef::as_ref));
        self.run("pg_ctl", &full)
    }

    /// Runs a server binary as the cluster's owner and fails on a non-zero exit.
    fn run(&self, program: &str, args: &[&std::ffi::OsStr]) -> Result<Output, EmbeddedError> {
        self.run_command(self.command(program), program, args)
    }

    fn run_command(
        &self,
        mut command: Command,
        program: &str,
        args: &[&std::ffi::OsStr],
    ) -> Result<Output, EmbeddedError> {
        command.args(args);
        if let Some(owner) = &self.owner {
            command
                .uid(owner.uid.as_raw())
                .gid(owner.gid.as_raw())
                .current_dir(&self.pgdata)
                .env("HOME", &self.pgdata);
        }
        let output = command
            .output()
            .map_err(io_error(format!("running {program}")))?;
        if output.status.success() {
            return Ok(output);
        }
        let hint = match &self.owner {
            Some(owner) => format!(
                " (PostgreSQL runs as user `{}`, which must be able to enter every directory above {})",
                owner.name,
                self.pgdata.display()
            ),
            None => String::new(),
        };
        Err(command_error(program, &output, &hint))
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bindir.join(program));
        command.env("LC_ALL", "C");
        command
    }

    fn give_to_owner(&self, path: &Path) -> Result<(), EmbeddedError> {
        match &self.owner {
            Some(owner) => {
                nix::unistd::chown(path, Some(owner.uid), Some(owner.gid)).map_err(|e| {
                    EmbeddedError::Io {
                        what: format!("giving {} to user {}", path.display(), owner.name),
                        source: e.into(),
                    }
                })
            }
            None => Ok(()),
        }
    }
}

fn command_error(program: &str, output: &Output, hint: &str) -> EmbeddedError {
    EmbeddedError::Command {
        command: program.to_owned(),
        status: output.status.to_string(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
        .trim()
        .to_owned(),
        hint: hint.to_owned(),
    }
}

fn write_private(path: &Path, contents: &str) -> Result<(), EmbeddedError> {
    let _ = fs::remove_file(path);
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(contents.as_bytes()))
        .map_err(io_error(format!("writing {}", path.display())))
}

fn free_port() -> Result<u16, EmbeddedError> {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(io_error("finding a free port"))
}

fn unprivileged_user() -> Result<User, EmbeddedError> {
    ["postgres", "nobody"]
        .into_iter()
        .find_map(|name| User::from_name(name).ok().flatten())
        .filter(|user| !user.uid.is_root() && user.gid != Gid::from_raw(0))
        .ok_or(EmbeddedError::NoUser)
}

/// Where the PostgreSQL server binaries are: `PATH` first (symlinks followed, so that a
/// `/usr/local/bin/initdb` link leads to its real directory), then `pg_config --bindir`, then the
/// newest `/usr/lib/postgresql/<version>/bin`.
pub fn find_bindir() -> Result<PathBuf, EmbeddedError> {
    let has_server = |dir: &Path| {
        ["initdb", "pg_ctl", "createdb"]
            .iter()
            .all(|p| dir.join(p).is_file())
    };
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|dir| fs::canonicalize(dir.join("initdb")).ok())
        .filter_map(|initdb| initdb.parent().map(Path::to_path_buf));
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let mut versioned: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versioned.sort_unstable_by_key(|(version, _)| std::cmp::Reverse(*version));
    on_path
        .chain(from_pg_config)
        .chain(versioned.into_iter().map(|(_, dir)| dir))
        .find(|dir| has_server(dir))
        .ok_or(EmbeddedError::NotFound)
}
