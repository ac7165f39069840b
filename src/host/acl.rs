//! The users a node's POSIX ACL names: udev's `uaccess` step grants the logged-in user of the
//! node's seat an ACL entry, and takes it away at the node's next event once its seat is
//! another. Read from the `system.posix_acl_access` attribute through the host's root, without
//! opening the node.

use super::Host;

const ACCESS_ACL: &str = "system.posix_acl_access";
/// The attribute's layout (linux/posix_acl_xattr.h): a 4-byte version, then 8-byte entries of
/// tag (u16), permissions (u16) and id (u32), little-endian.
const VERSION: u32 = 2;
const ENTRY: usize = 8;
/// ACL_USER: an entry for one named user (the owner's entry is ACL_USER_OBJ).
const TAG_USER: u16 = 0x02;

/// The uids with an entry of their own in the ACL of `node` (a host path); none without an ACL.
pub fn users(host: &Host, node: &str) -> Vec<u32> {
    // An ACL of a few entries; 32 named users' worth is more than any node carries.
    let mut value = [0u8; 4 + 36 * ENTRY];
    let Ok(len) = rustix::fs::lgetxattr(host.path(node), ACCESS_ACL, &mut value[..]) else {
        return Vec::new();
    };
    parse(&value[..len])
}

fn parse(value: &[u8]) -> Vec<u32> {
    let Some((version, entries)) = value.split_first_chunk::<4>() else {
        return Vec::new();
    };
    if u32::from_le_bytes(*version) != VERSION {
        return Vec::new();
    }
    entries
        .chunks_exact(ENTRY)
        .filter(|entry| u16::from_le_bytes([entry[0], entry[1]]) == TAG_USER)
        .map(|entry| u32::from_le_bytes([entry[4], entry[5], entry[6], entry[7]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(tag: u16, perm: u16, id: u32) -> Vec<u8> {
        [
            &tag.to_le_bytes()[..],
            &perm.to_le_bytes(),
            &id.to_le_bytes(),
        ]
        .concat()
    }

    #[test]
    fn only_named_users_count() {
        let mut value = VERSION.to_le_bytes().to_vec();
        for (tag, id) in [
            (0x01, u32::MAX),
            (0x02, 1000),
            (0x04, u32::MAX),
            (0x08, 44),
            (0x10, u32::MAX),
            (0x20, u32::MAX),
        ] {
            value.extend(entry(tag, 6, id));
        }
        assert_eq!(parse(&value), [1000]);
        assert_eq!(parse(&value[..3]), Vec::<u32>::new());
        value[0] = 1;
        assert_eq!(parse(&value), Vec::<u32>::new(), "an unknown version");
    }
}
