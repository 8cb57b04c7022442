//! Prefixed, sortable identifiers (`usr_…`, `prj_…`, `ses_…`): a UUIDv7 in simple hex form.

/// A new id with the given prefix, e.g. `new_id("usr")` -> `usr_0192…`.
/// UUIDv7 starts with a millisecond timestamp, so ids sort by creation time.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// True when `id` has the given prefix followed by 32 lowercase hex digits.
pub fn is_valid(prefix: &str, id: &str) -> bool {
    id.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_prefix_and_sort_by_creation() {
        let a = new_id("usr");
        let b = new_id("usr");
        assert!(is_valid("usr", &a));
        assert!(!is_valid("prj", &a));
        assert!(a < b, "{a} should sort before {b}");
    }

    #[test]
    fn malformed_ids_are_rejected() {
        assert!(!is_valid("usr", "usr_"));
        assert!(!is_valid("usr", "usr_zz"));
        assert!(!is_valid("usr", "usr0192"));
    }
}
