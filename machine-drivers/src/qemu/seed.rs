//! cloud-init NoCloud seeds: a small ISO 9660 volume labelled `cidata` holding
//! `meta-data` and `user-data`, written without external tools.
//!
//! The volume is plain ISO 9660 (no Rock Ridge or Joliet): one root directory
//! with the two files. Linux shows `META-DATA.;1` as `meta-data`, which is how
//! cloud-init's NoCloud source reads it.

use std::io;
use std::path::Path;

const SECTOR: usize = 2048;

fn both32(v: u32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&v.to_le_bytes());
    b[4..].copy_from_slice(&v.to_be_bytes());
    b
}

fn both16(v: u16) -> [u8; 4] {
    let mut b = [0u8; 4];
    b[..2].copy_from_slice(&v.to_le_bytes());
    b[2..].copy_from_slice(&v.to_be_bytes());
    b
}

fn dir_record(name: &[u8], extent: u32, len: u32, dir: bool) -> Vec<u8> {
    let mut r = vec![0u8; 33];
    r[2..10].copy_from_slice(&both32(extent));
    r[10..18].copy_from_slice(&both32(len));
    // recording date: 2000-01-01 00:00:00 UTC
    r[18..25].copy_from_slice(&[100, 1, 1, 0, 0, 0, 0]);
    r[25] = if dir { 2 } else { 0 };
    r[28..32].copy_from_slice(&both16(1));
    r[32] = u8::try_from(name.len()).unwrap_or(0);
    r.extend_from_slice(name);
    if r.len() % 2 == 1 {
        r.push(0);
    }
    r[0] = u8::try_from(r.len()).unwrap_or(0);
    r
}

fn padded(text: &str, n: usize) -> Vec<u8> {
    let mut v: Vec<u8> = text.bytes().take(n).collect();
    v.resize(n, b' ');
    v
}

/// The bytes of an ISO 9660 volume labelled `label` holding `files`
/// (name, contents), names given in lowercase as the guest will see them.
pub fn iso9660(label: &str, files: &[(&str, &[u8])]) -> Vec<u8> {
    const ROOT: u32 = 20;
    let mut next = ROOT + 1;
    let mut placed = Vec::new();
    let mut sorted: Vec<&(&str, &[u8])> = files.iter().collect();
    sorted.sort_by_key(|(n, _)| n.to_ascii_uppercase());
    for (name, data) in sorted {
        let ident = format!(
            "{}{};1",
            name.to_ascii_uppercase(),
            if name.contains('.') { "" } else { "." }
        );
        placed.push((ident, next, *data));
        next += u32::try_from(data.len().div_ceil(SECTOR).max(1)).unwrap_or(1);
    }
    let total = next;
    let mut root = Vec::new();
    root.extend(dir_record(&[0], ROOT, SECTOR as u32, true));
    root.extend(dir_record(&[1], ROOT, SECTOR as u32, true));
    for (ident, extent, data) in &placed {
        root.extend(dir_record(
            ident.as_bytes(),
            *extent,
            u32::try_from(data.len()).unwrap_or(0),
            false,
        ));
    }
    root.resize(SECTOR, 0);

    let mut img = vec![0u8; total as usize * SECTOR];
    let pvd = &mut img[16 * SECTOR..17 * SECTOR];
    pvd[0] = 1;
    pvd[1..6].copy_from_slice(b"CD001");
    pvd[6] = 1;
    pvd[8..40].copy_from_slice(&padded("LINUX", 32));
    pvd[40..72].copy_from_slice(&padded(label, 32));
    pvd[80..88].copy_from_slice(&both32(total));
    pvd[120..124].copy_from_slice(&both16(1));
    pvd[124..128].copy_from_slice(&both16(1));
    pvd[128..132].copy_from_slice(&both16(SECTOR as u16));
    pvd[132..140].copy_from_slice(&both32(10));
    pvd[140..144].copy_from_slice(&18u32.to_le_bytes());
    pvd[148..152].copy_from_slice(&19u32.to_be_bytes());
    pvd[156..190].copy_from_slice(&dir_record(&[0], ROOT, SECTOR as u32, true));
    for (start, len) in [
        (190, 128),
        (318, 128),
        (446, 128),
        (574, 128),
        (702, 37),
        (739, 37),
        (776, 37),
    ] {
        pvd[start..start + len].fill(b' ');
    }
    for start in [813, 830, 847, 864] {
        pvd[start..start + 16].fill(b'0');
    }
    pvd[881] = 1;
    let term = &mut img[17 * SECTOR..18 * SECTOR];
    term[0] = 255;
    term[1..6].copy_from_slice(b"CD001");
    term[6] = 1;
    // path tables: the root only
    let l = &mut img[18 * SECTOR..18 * SECTOR + 10];
    l[0] = 1;
    l[2..6].copy_from_slice(&ROOT.to_le_bytes());
    l[6..8].copy_from_slice(&1u16.to_le_bytes());
    let m = &mut img[19 * SECTOR..19 * SECTOR + 10];
    m[0] = 1;
    m[2..6].copy_from_slice(&ROOT.to_be_bytes());
    m[6..8].copy_from_slice(&1u16.to_be_bytes());
    img[ROOT as usize * SECTOR..(ROOT as usize + 1) * SECTOR].copy_from_slice(&root);
    for (_, extent, data) in &placed {
        let at = *extent as usize * SECTOR;
        img[at..at + data.len()].copy_from_slice(data);
    }
    img
}

/// The NoCloud `meta-data` and `user-data` giving root `authorized_key` and the
/// host name `hostname`.
pub fn nocloud_documents(
    instance_id: &str,
    hostname: &str,
    authorized_key: &str,
) -> (String, String) {
    let meta = format!("instance-id: {instance_id}\nlocal-hostname: {hostname}\n");
    let user = format!(
        "#cloud-config\nhostname: {hostname}\ndisable_root: false\nssh_pwauth: false\nssh_authorized_keys:\n  - {}\n",
        authorized_key.trim()
    );
    (meta, user)
}

/// Write a NoCloud seed volume (`cidata`) to `path`.
pub fn write_nocloud(
    path: &Path,
    instance_id: &str,
    hostname: &str,
    authorized_key: &str,
) -> io::Result<()> {
    let (meta, user) = nocloud_documents(instance_id, hostname, authorized_key);
    let iso = iso9660(
        "cidata",
        &[
            ("meta-data", meta.as_bytes()),
            ("user-data", user.as_bytes()),
        ],
    );
    machine_core::fsutil::write_atomic(path, &iso, 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_layout() {
        let iso = iso9660(
            "cidata",
            &[
                ("user-data", b"#cloud-config\n"),
                ("meta-data", b"instance-id: x\n"),
            ],
        );
        assert_eq!(iso.len(), 23 * SECTOR);
        assert_eq!(&iso[16 * SECTOR + 1..16 * SECTOR + 6], b"CD001");
        assert_eq!(&iso[16 * SECTOR + 40..16 * SECTOR + 46], b"cidata");
        assert_eq!(iso[17 * SECTOR], 255);
        let root = &iso[20 * SECTOR..21 * SECTOR];
        let text = String::from_utf8_lossy(root);
        let (m, u) = (
            text.find("META-DATA.;1").expect("meta"),
            text.find("USER-DATA.;1").expect("user"),
        );
        assert!(m < u, "sorted names");
        assert_eq!(&iso[21 * SECTOR..21 * SECTOR + 15], b"instance-id: x\n");
        assert_eq!(&iso[22 * SECTOR..22 * SECTOR + 14], b"#cloud-config\n");
    }

    #[test]
    fn blkid_sees_a_cidata_iso9660_volume() {
        let Some(blkid) = ["/usr/sbin/blkid", "/sbin/blkid"]
            .into_iter()
            .find(|p| Path::new(p).exists())
        else {
            eprintln!("SKIPPED: blkid not installed");
            return;
        };
        let d = tempfile::tempdir().expect("tmp");
        let p = d.path().join("seed.iso");
        write_nocloud(&p, "i-1", "vm1", "ssh-ed25519 AAAA test").expect("write");
        let out = std::process::Command::new(blkid)
            .arg("-p")
            .arg(&p)
            .output()
            .expect("blkid");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("LABEL=\"cidata\"") && text.contains("TYPE=\"iso9660\""),
            "{text}"
        );
    }
}
