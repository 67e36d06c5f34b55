//! Right to erasure across backups: the erasure rules of a source's policy
//! ([`rules`]), the ledger of erasure requests kept in the state store and replicated to
//! the stores ([`ledger`]), their re-application to every restore, drill and anonymized
//! copy ([`apply`]), and the proof of which backups still hold a subject ([`status`]).

pub mod apply;
pub mod ledger;
pub mod rules;

use crate::pipeline::{Context, ContextError};

/// The key of the pseudonyms an erasure writes: the anonymization key when one is
/// configured (the same fakes as anonymized backups), else a key derived from the
/// integrity key, which every appliance that restores has.
pub fn pseudonym_key(ctx: &Context) -> Result<Vec<u8>, ContextError> {
    match crate::anonymize::setup::load_key(&ctx.config) {
        Ok(key) => Ok(key),
        Err(crate::anonymize::setup::SetupError::NoKey) => Ok(ctx
            .integrity_key()?
            .derive("coffre erasure pseudonyms")
            .to_vec()),
        Err(e) => Err(ContextError::Integrity(e.to_string())),
    }
}
pub mod filter;
pub mod status;
