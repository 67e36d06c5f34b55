//! Anonymization rules (in progress).
