//! Turns a validated configuration into live parts: stores, sources, keys.
//! Building a part does no I/O beyond reading local secret files.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{Config, SourceConfig, TargetConfig};
use crate::integrity::IntegrityKey;
use crate::source::{MysqlDatabase, PgDatabase, Source, SqliteDatabase};
use crate::store::DynStore;
use crate::store::fs::FsStore;
use crate::store::s3::{ObjectLock, S3Params, S3Store};

/// Stall timeout of targets that set none.
const DEFAULT_STALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Errors while wiring the configuration to real parts.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("target {target}: environment variable {var} is not set (it should hold the {what})")]
    MissingEnv {
        target: String,
        var: String,
        what: &'static str,
    },
    #[error("source {source_name}: cannot read password_file {path}: {reason}")]
    PasswordFile {
        source_name: String,
        path: String,
        reason: String,
    },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Target(String),
    #[error(transparent)]
    Key(#[from] crate::keys::KeyError),
    #[error("{0}")]
    Integrity(String),
}

/// The configuration with its stores built.
pub struct Context {
    pub config: Config,
    stores: BTreeMap<String, DynStore>,
    /// Targets that could not be built (e.g. a credential variable unset), with
    /// why: an error only for the sources that use them.
    broken: BTreeMap<String, String>,
    /// The integrity key, or why it could not be loaded (an error only for the
    /// commands that write or read backups).
    integrity: Result<IntegrityKey, String>,
}

impl Context {
    /// Builds every store of the configuration (no network call).
    pub async fn new(config: Config) -> Result<Context, ContextError> {
        let mut stores: BTreeMap<String, DynStore> = BTreeMap::new();
        let mut broken = BTreeMap::new();
        for (name, target) in &config.targets {
            let built: Result<DynStore, ContextError> = async {
                Ok(match target {
                    TargetConfig::Fs(fs) => {
                        Arc::new(FsStore::new(name.clone(), fs.path.clone())) as DynStore
                    }
                    TargetConfig::S3(s3) => {
                        let env =
                            |var: &Option<String>, what| -> Result<Option<String>, ContextError> {
                                match var {
                                    None => Ok(None),
                                    Some(v) => std::env::var(v).map(Some).map_err(|_| {
                                        ContextError::MissingEnv {
                                            target: name.clone(),
                                            var: v.clone(),
                                            what,
                                        }
                                    }),
                                }
                            };
                        let access_key_id = env(&s3.access_key_id_env, "access key id")?;
                        let secret_access_key =
                            env(&s3.secret_access_key_env, "secret access key")?;
                        Arc::new(
                            S3Store::connect(S3Params {
                                name: name.clone(),
                                bucket: s3.bucket.clone(),
                                region: s3.region.clone(),
                                endpoint: s3.endpoint.clone(),
                                prefix: s3.prefix.clone(),
                                access_key_id,
                                secret_access_key,
                                part_size: (s3.part_size_mib as usize) << 20,
                                stall_timeout: target.stall_timeout(),
                                object_lock: s3.object_lock.as_ref().map(|l| ObjectLock {
                                    mode: l.mode.as_s3_str().to_owned(),
                                    days: l.days,
                                }),
                            })
                            .await?,
                        )
                    }
                })
            }
            .await;
            match built {
                Ok(store) => {
                    stores.insert(name.clone(), store);
                }
                Err(e) => {
                    broken.insert(name.clone(), e.to_string());
                }
            }
        }
        let integrity = IntegrityKey::load(&config).map_err(|e| e.to_string());
        Ok(Context {
            config,
            stores,
            broken,
            integrity,
        })
    }

    /// How long a target may take no data before a backup drops it.
    pub fn stall_timeout(&self, target: &str) -> std::time::Duration {
        self.config
            .targets
            .get(target)
            .map_or(DEFAULT_STALL_TIMEOUT, TargetConfig::stall_timeout)
    }

    /// The key that tags and checks manifests.
    pub fn integrity_key(&self) -> Result<&IntegrityKey, ContextError> {
        self.integrity
            .as_ref()
            .map_err(|e| ContextError::Integrity(e.clone()))
    }

    /// The identities of `[encryption] identity_file` (what restores, drills and copies
    /// decrypt with), and the file's name for messages. Reads the file each time.
    pub fn identities(&self) -> Result<(crate::keys::Identities, String), ContextError> {
        let file = self
            .config
            .encryption
            .identity_file
            .as_deref()
            .ok_or(crate::keys::KeyError::NoIdentity)?;
        Ok((
            crate::keys::load_identities(file)?,
            file.display().to_string(),
        ))
    }

    /// The store of a target.
    pub fn store(&self, target: &str) -> Option<DynStore> {
        self.stores.get(target).cloned()
    }

    /// The stores of a source, in the order of its `targets`.
    pub fn stores_of(&self, source: &str) -> Result<Vec<DynStore>, ContextError> {
        let cfg = self.config.source(source)?;
        if let Some((_, why)) = cfg
            .targets()
            .iter()
            .find_map(|t| self.broken.get_key_value(t))
        {
            return Err(ContextError::Target(why.clone()));
        }
        Ok(cfg.targets().iter().filter_map(|t| self.store(t)).collect())
    }

    /// Names of the configured sources.
    pub fn source_names(&self) -> Vec<String> {
        self.config.sources.keys().cloned().collect()
    }

    /// The database of a source, ready to dump.
    pub fn source(&self, name: &str) -> Result<Arc<dyn Source>, ContextError> {
        Ok(match self.config.source(name)? {
            SourceConfig::Postgres(_) => Arc::new(self.postgres(name)?),
            SourceConfig::Mysql(_) => Arc::new(self.mysql(name)?),
            SourceConfig::Sqlite(s) => Arc::new(SqliteDatabase::new(s.path.clone())),
        })
    }

    /// The password a source's `password_file` holds, if it names one.
    fn password(
        &self,
        name: &str,
        file: Option<&std::path::Path>,
    ) -> Result<Option<String>, ContextError> {
        file.map(|path| {
            read_password(path).map_err(|reason| ContextError::PasswordFile {
                source_name: name.to_owned(),
                path: path.display().to_string(),
                reason,
            })
        })
        .transpose()
    }

    /// The MySQL settings of a source (tools, password), or defaults for others.
    pub fn mysql(&self, name: &str) -> Result<MysqlDatabase, ContextError> {
        match self.config.source(name)? {
            SourceConfig::Mysql(my) => {
                let mut db = MysqlDatabase::new(my.url.clone());
                db.password = self.password(name, my.password_file.as_deref())?;
                if let Some(tool) = &my.mysqldump {
                    db.dump_tool.clone_from(tool);
                }
                if let Some(tool) = &my.mysql {
                    db.client.clone_from(tool);
                }
                db.events = my.events;
                Ok(db)
            }
            _ => Ok(MysqlDatabase::new(String::new())),
        }
    }

    /// The PostgreSQL settings of a source (tools, password), or defaults for others.
    pub fn postgres(&self, name: &str) -> Result<PgDatabase, ContextError> {
        match self.config.source(name)? {
            SourceConfig::Postgres(pg) => {
                let password = self.password(name, pg.password_file.as_deref())?;
                Ok(PgDatabase {
                    url: pg.url.clone(),
                    password,
                    pg_dump: pg.pg_dump.clone(),
                    psql: pg.psql.clone(),
                    owners_and_privileges: pg.owners_and_privileges,
                })
            }
            _ => Ok(PgDatabase::new(String::new())),
        }
    }
}

fn read_password(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let pw = text.trim_end_matches(['\n', '\r']).to_owned();
    if pw.is_empty() {
        return Err("the file is empty".into());
    }
    Ok(pw)
}
