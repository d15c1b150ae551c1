//! `zegolog grant-analyst`: its flags, the password read from the environment variable they
//! name, and [`zegolog::grant::run`].

use clap::Args;

use super::database::DatabaseArgs;

#[derive(Debug, Args)]
pub struct GrantAnalystArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// The role to create, or to update if it exists (it then loses every other right in this
    /// database and its memberships in other roles). Case and characters are kept as given.
    #[arg(value_name = "ROLE")]
    pub role: String,

    /// The name of an environment variable holding the role's password (printable ASCII). The
    /// password itself is never a flag, since flags show in the process list. Without it a new
    /// role gets no password (it cannot log in over a password-checked connection until one
    /// is set) and an existing role keeps its own.
    #[arg(long, value_name = "VAR")]
    pub password_env: Option<String>,
}

impl GrantAnalystArgs {
    /// The password in the variable `--password-env` names, if it names one.
    fn password(&self) -> anyhow::Result<Option<String>> {
        let Some(var) = &self.password_env else {
            return Ok(None);
        };
        let password = std::env::var(var).map_err(|e| match e {
            std::env::VarError::NotPresent => {
                anyhow::anyhow!("--password-env {var}: the environment variable {var} is not set")
            }
            std::env::VarError::NotUnicode(_) => {
                anyhow::anyhow!("--password-env {var}: the value of {var} is not valid Unicode")
            }
        })?;
        Ok(Some(password))
    }
}

/// `zegolog grant-analyst`: the password is read once the database is open, before it is
/// migrated.
pub async fn run(args: GrantAnalystArgs) -> anyhow::Result<()> {
    args.database
        .with(async |database| {
            let password = args.password()?;
            zegolog::grant::run(database, &args.role, password.as_deref()).await
        })
        .await
}
