//! What comes into a collection: photos as they arrive (form parts, or an archive's entries),
//! each stored as `photos/<index>` in the collection's staging folder and listed in its
//! manifest. Names from the client or the archive are only ever metadata: nothing is written
//! under a name it chose, so `../`, absolute paths and links cannot reach outside the folder.
//! An entry that cannot be a photo (a link, a device, a file over the size limit, a path that
//! leaves the archive) is listed with its error and the others go on; more entries or bytes
//! than the limits allow refuse the whole collection.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};

use argus_pipeline::collections::ManifestEntry;

/// The limits of one collection (`ARGUS_MAX_COLLECTION_*`, `ARGUS_MAX_PHOTO_BYTES`).
#[derive(Clone, Copy, Debug)]
pub struct IntakeLimits {
    pub max_photos: u64,
    /// Bytes of photos stored, archives unpacked included (a decompression bomb stops here).
    pub max_bytes: u64,
    pub max_photo_bytes: u64,
}

/// Longest tar header entry taken (a GNU long name or a pax extended header): a name or a
/// few attributes, never megabytes.
const MAX_TAR_HEADER_ENTRY: u64 = 64 * 1024;

/// A reader that fails once more than `left` bytes came through it: every byte an archive
/// unpacks to is counted, the ones of entries passed over or refused too, so a bomb costs no
/// more than the limit in time either.
struct Bounded<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self.left.checked_sub(n as u64).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::FileTooLarge,
                "the archive unpacks past the limit",
            )
        })?;
        Ok(n)
    }
}

/// Why a whole collection is refused.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("more than {0} photos (ARGUS_MAX_COLLECTION_PHOTOS)")]
    TooManyPhotos(u64),
    #[error(
        "the photos come to more than {0} bytes (ARGUS_MAX_COLLECTION_BYTES), archives unpacked"
    )]
    TooManyBytes(u64),
    #[error("{0}")]
    BadArchive(String),
    #[error("storage: {0}")]
    Io(#[from] std::io::Error),
}

/// A collection being received.
pub struct Intake {
    dir: PathBuf,
    manifest: BufWriter<File>,
    limits: IntakeLimits,
    pub photos: u64,
    pub refused: u64,
    pub bytes: u64,
}

/// How a name is kept in the manifest: control characters replaced, at most 255 characters.
fn clean_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(255)
        .collect();
    if cleaned.is_empty() {
        "(unnamed)".into()
    } else {
        cleaned
    }
}

impl Intake {
    pub fn new(dir: PathBuf, limits: IntakeLimits) -> Result<Intake, IntakeError> {
        std::fs::create_dir_all(dir.join("photos"))?;
        let manifest = BufWriter::new(File::create(dir.join("manifest.jsonl"))?);
        Ok(Intake {
            dir,
            manifest,
            limits,
            photos: 0,
            refused: 0,
            bytes: 0,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the next photo goes (its index is [`Intake::photos`]).
    pub fn next_photo_path(&self) -> Result<PathBuf, IntakeError> {
        if self.photos >= self.limits.max_photos {
            return Err(IntakeError::TooManyPhotos(self.limits.max_photos));
        }
        // Refused entries are listed too: bounded, so a stream of junk cannot grow the list.
        if self.refused >= self.limits.max_photos {
            return Err(IntakeError::TooManyPhotos(self.limits.max_photos));
        }
        Ok(self.dir.join("photos").join(self.photos.to_string()))
    }

    pub fn limits(&self) -> IntakeLimits {
        self.limits
    }

    /// Counts `n` more bytes stored; past the limit the collection is refused.
    pub fn count_bytes(&mut self, n: u64) -> Result<(), IntakeError> {
        self.bytes += n;
        if self.bytes > self.limits.max_bytes {
            return Err(IntakeError::TooManyBytes(self.limits.max_bytes));
        }
        Ok(())
    }

    /// The photo at [`Intake::next_photo_path`] is complete.
    pub fn accepted(&mut self, name: &str, bytes: u64) -> Result<(), IntakeError> {
        self.write(&ManifestEntry {
            name: clean_name(name),
            index: Some(self.photos),
            bytes: Some(bytes),
            error: None,
        })?;
        self.photos += 1;
        Ok(())
    }

    /// An entry that is not stored, with why.
    pub fn refuse(&mut self, name: &str, why: &str) -> Result<(), IntakeError> {
        if self.refused >= self.limits.max_photos {
            return Err(IntakeError::TooManyPhotos(self.limits.max_photos));
        }
        self.write(&ManifestEntry {
            name: clean_name(name),
            index: None,
            bytes: None,
            error: Some(why.to_string()),
        })?;
        self.refused += 1;
        Ok(())
    }

    fn write(&mut self, entry: &ManifestEntry) -> Result<(), IntakeError> {
        serde_json::to_writer(&mut self.manifest, entry).map_err(std::io::Error::other)?;
        self.manifest.write_all(b"\n")?;
        Ok(())
    }

    /// Flushes the manifest to disk.
    pub fn finish(mut self) -> Result<Intake, IntakeError> {
        self.manifest.flush()?;
        self.manifest.get_ref().sync_all()?;
        Ok(self)
    }

    /// Copies one photo from `reader`: stored when within the per-photo limit, refused (and
    /// removed) past it, reading no further than one byte over.
    fn copy_photo(&mut self, name: &str, reader: &mut dyn Read) -> Result<(), IntakeError> {
        let path = self.next_photo_path()?;
        let limit = self.limits.max_photo_bytes;
        let mut out = BufWriter::new(File::create(&path)?);
        let mut taken = reader.take(limit + 1);
        let mut buf = vec![0u8; 64 * 1024];
        let mut n = 0u64;
        loop {
            let got = match taken.read(&mut buf) {
                Ok(0) => break,
                Ok(got) => got,
                Err(e) => {
                    drop(out);
                    let _ = std::fs::remove_file(&path);
                    if e.kind() == std::io::ErrorKind::FileTooLarge {
                        return Err(IntakeError::TooManyBytes(self.limits.max_bytes));
                    }
                    return Err(IntakeError::BadArchive(format!(
                        "{}: {e}",
                        clean_name(name)
                    )));
                }
            };
            n += got as u64;
            if n > limit {
                break;
            }
            self.count_bytes(got as u64)?;
            out.write_all(&buf[..got])?;
        }
        if n > limit {
            drop(out);
            std::fs::remove_file(&path)?;
            return self.refuse(
                name,
                &format!("larger than {limit} bytes (ARGUS_MAX_PHOTO_BYTES)"),
            );
        }
        out.flush()?;
        if n == 0 {
            drop(out);
            std::fs::remove_file(&path)?;
            return self.refuse(name, "empty");
        }
        self.accepted(name, n)
    }

    /// Unpacks an archive (tar, gzip-compressed tar or zip, told apart by their first bytes)
    /// into photos. Directories are passed over; every other entry that is not a regular file
    /// with a relative path inside the archive is listed as refused.
    pub fn unpack(&mut self, archive: &Path) -> Result<(), IntakeError> {
        let mut head = [0u8; 262];
        let n = File::open(archive)?.read(&mut head)?;
        let head = &head[..n];
        // What the tar stream may unpack to: the photos' limit, with room for the tar's own
        // headers and padding (512 bytes an entry).
        let room = self.limits.max_bytes.saturating_sub(self.bytes)
            + (self.limits.max_photos + 1024) * 1536
            + (1 << 20);
        if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
            self.unpack_zip(archive)
        } else if head.starts_with(&[0x1f, 0x8b]) {
            let gz = flate2::read::GzDecoder::new(std::io::BufReader::new(File::open(archive)?));
            self.unpack_tar(Bounded {
                inner: gz,
                left: room,
            })
        } else if head.len() >= 262 && &head[257..262] == b"ustar" {
            let file = std::io::BufReader::new(File::open(archive)?);
            self.unpack_tar(Bounded {
                inner: file,
                left: room,
            })
        } else {
            Err(IntakeError::BadArchive(
                "an archive must be a tar, a gzip-compressed tar or a zip".into(),
            ))
        }
    }

    /// Entries are read raw: GNU long names and pax headers are taken here, each at most
    /// [`MAX_TAR_HEADER_ENTRY`] (the tar crate would read any size of them into memory).
    fn unpack_tar(&mut self, reader: impl Read) -> Result<(), IntakeError> {
        let mut tar = tar::Archive::new(reader);
        let max_bytes = self.limits.max_bytes;
        let bad = |e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::FileTooLarge {
                IntakeError::TooManyBytes(max_bytes)
            } else {
                IntakeError::BadArchive(format!("a damaged tar: {e}"))
            }
        };
        let mut long_name: Option<String> = None;
        for entry in tar.entries().map_err(bad)?.raw(true) {
            let mut entry = entry.map_err(bad)?;
            let kind = entry.header().entry_type();
            if kind.is_gnu_longname()
                || kind.is_gnu_longlink()
                || kind.is_pax_local_extensions()
                || kind.is_pax_global_extensions()
            {
                let size = entry.header().size().map_err(bad)?;
                if size > MAX_TAR_HEADER_ENTRY {
                    return Err(IntakeError::BadArchive(format!(
                        "a tar header entry of {size} bytes (at most {MAX_TAR_HEADER_ENTRY})"
                    )));
                }
                let mut data = Vec::with_capacity(size as usize);
                (&mut entry)
                    .take(size)
                    .read_to_end(&mut data)
                    .map_err(bad)?;
                if kind.is_gnu_longname() {
                    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
                    long_name = Some(String::from_utf8_lossy(&data[..end]).into_owned());
                } else if kind.is_pax_local_extensions() {
                    if let Some(path) = pax_path(&data) {
                        long_name = Some(path);
                    }
                }
                continue;
            }
            let name = long_name
                .take()
                .unwrap_or_else(|| String::from_utf8_lossy(&entry.path_bytes()).into_owned());
            if kind.is_dir() {
                continue;
            }
            if !kind.is_file() {
                let what = if kind.is_symlink() || kind.is_hard_link() {
                    "a link"
                } else {
                    "not a regular file"
                };
                self.refuse(&name, &format!("refused: {what}"))?;
                continue;
            }
            if !is_inside(Path::new(&name)) {
                self.refuse(
                    &name,
                    "refused: the path leaves the archive (absolute, or ..)",
                )?;
                continue;
            }
            self.copy_photo(&name, &mut entry)?;
        }
        Ok(())
    }

    fn unpack_zip(&mut self, archive: &Path) -> Result<(), IntakeError> {
        // The central directory is read whole into memory by the zip crate: its entry count is
        // checked first, from the end-of-central-directory record.
        if let Some(entries) = zip_entry_count(archive)? {
            if entries > 2 * self.limits.max_photos + 1024 {
                return Err(IntakeError::TooManyPhotos(self.limits.max_photos));
            }
        }
        let bad = |e: zip::result::ZipError| IntakeError::BadArchive(format!("a damaged zip: {e}"));
        let mut zip =
            zip::ZipArchive::new(std::io::BufReader::new(File::open(archive)?)).map_err(bad)?;
        for i in 0..zip.len() {
            let mut file = match zip.by_index(i) {
                Ok(file) => file,
                Err(e) => {
                    self.refuse(&format!("entry {i}"), &format!("refused: {e}"))?;
                    continue;
                }
            };
            let name = file.name().to_string();
            if file.is_dir() {
                continue;
            }
            if file.is_symlink() {
                self.refuse(&name, "refused: a link")?;
                continue;
            }
            if file.enclosed_name().is_none() || !is_inside(Path::new(&name)) {
                self.refuse(
                    &name,
                    "refused: the path leaves the archive (absolute, or ..)",
                )?;
                continue;
            }
            self.copy_photo(&name, &mut file)?;
        }
        Ok(())
    }
}

/// The `path` of a pax extended header (`<len> path=<value>\n` records), if it has one.
fn pax_path(data: &[u8]) -> Option<String> {
    let mut rest = data;
    while !rest.is_empty() {
        let space = rest.iter().position(|&b| b == b' ')?;
        let len: usize = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
        if len <= space || len > rest.len() {
            return None;
        }
        let record = &rest[space + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(value) = record.strip_prefix(b"path=") {
            return Some(String::from_utf8_lossy(value).into_owned());
        }
        rest = &rest[len..];
    }
    None
}

/// The entry count a zip's end-of-central-directory record (zip64's when the classic one says
/// 0xFFFF) declares; `None` when there is no such record (the zip crate then says what is wrong).
fn zip_entry_count(path: &Path) -> std::io::Result<Option<u64>> {
    use std::io::{Seek, SeekFrom};
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let tail_len = len.min(22 + 65_535);
    file.seek(SeekFrom::Start(len - tail_len))?;
    let mut tail = vec![0u8; tail_len as usize];
    file.read_exact(&mut tail)?;
    let Some(eocd) = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| tail[i..i + 4] == *b"PK\x05\x06")
    else {
        return Ok(None);
    };
    let classic = u16::from_le_bytes([tail[eocd + 10], tail[eocd + 11]]) as u64;
    if classic != 0xFFFF || eocd < 20 || tail[eocd - 20..eocd - 16] != *b"PK\x06\x07" {
        return Ok(Some(classic));
    }
    let at = u64::from_le_bytes(tail[eocd - 12..eocd - 4].try_into().expect("8 bytes"));
    if at.checked_add(56).is_none_or(|end| end > len) {
        return Ok(Some(u64::MAX));
    }
    file.seek(SeekFrom::Start(at))?;
    let mut record = [0u8; 56];
    file.read_exact(&mut record)?;
    if record[..4] != *b"PK\x06\x06" {
        return Ok(Some(u64::MAX));
    }
    Ok(Some(u64::from_le_bytes(
        record[32..40].try_into().expect("8 bytes"),
    )))
}

/// A relative path that stays inside: no root, no prefix, no `..`.
fn is_inside(path: &Path) -> bool {
    !path.as_os_str().is_empty()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_relative_paths_inside_count() {
        assert!(is_inside(Path::new("a/b.jpg")));
        assert!(is_inside(Path::new("./b.jpg")));
        for bad in ["../b.jpg", "a/../../b.jpg", "/etc/passwd", ""] {
            assert!(!is_inside(Path::new(bad)), "{bad}");
        }
        assert_eq!(clean_name("a\u{0}b\nc"), "a?b?c");
    }

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "argus-intake-{tag}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    const LIMITS: IntakeLimits = IntakeLimits {
        max_photos: 10,
        max_bytes: 1 << 20,
        max_photo_bytes: 64 << 10,
    };

    /// A tar entry whose name is written as is (tar::Header::set_path refuses `..`).
    fn raw_entry(
        builder: &mut tar::Builder<Vec<u8>>,
        name: &[u8],
        kind: tar::EntryType,
        data: &[u8],
    ) {
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        if kind.is_symlink() || kind.is_hard_link() {
            header.set_link_name("/etc/passwd").unwrap();
        }
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }

    fn manifest(dir: &Path) -> Vec<ManifestEntry> {
        std::fs::read_to_string(dir.join("manifest.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Every file under `dir`, relative.
    fn files(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn hostile_tar_entries_are_listed_and_nothing_lands_outside() {
        let root = scratch("tar");
        let staging = root.join("staging");
        let mut b = tar::Builder::new(Vec::new());
        raw_entry(
            &mut b,
            b"good/photo.jpg",
            tar::EntryType::Regular,
            b"jpeg bytes",
        );
        raw_entry(&mut b, b"../escape.jpg", tar::EntryType::Regular, b"escape");
        raw_entry(
            &mut b,
            b"/tmp/absolute.jpg",
            tar::EntryType::Regular,
            b"absolute",
        );
        raw_entry(&mut b, b"link.jpg", tar::EntryType::Symlink, b"");
        raw_entry(&mut b, b"hard.jpg", tar::EntryType::Link, b"");
        raw_entry(&mut b, b"fifo", tar::EntryType::Fifo, b"");
        raw_entry(&mut b, b"dir/", tar::EntryType::Directory, b"");
        raw_entry(
            &mut b,
            b"big.jpg",
            tar::EntryType::Regular,
            &vec![7u8; 65 << 10],
        );
        raw_entry(&mut b, b"empty.jpg", tar::EntryType::Regular, b"");
        raw_entry(&mut b, b"second.png", tar::EntryType::Regular, b"png bytes");
        let archive = root.join("a.tar");
        std::fs::write(&archive, b.into_inner().unwrap()).unwrap();
        let mut intake = Intake::new(staging.clone(), LIMITS).unwrap();
        intake.unpack(&archive).unwrap();
        let intake = intake.finish().unwrap();
        assert_eq!((intake.photos, intake.refused), (2, 7));
        let entries = manifest(&staging);
        let why = |name: &str| {
            entries
                .iter()
                .find(|e| e.name == name)
                .and_then(|e| e.error.clone())
                .unwrap_or_default()
        };
        assert!(why("../escape.jpg").contains("leaves the archive"));
        assert!(why("/tmp/absolute.jpg").contains("leaves the archive"));
        assert!(why("link.jpg").contains("a link") && why("hard.jpg").contains("a link"));
        assert!(why("fifo").contains("not a regular file"));
        assert!(why("big.jpg").contains("larger than 65536 bytes"));
        assert!(why("empty.jpg").contains("empty"));
        // Only the two photos, under their indices, and the manifest: nothing else anywhere.
        assert_eq!(files(&staging), ["manifest.jsonl", "photos/0", "photos/1"]);
        assert_eq!(
            std::fs::read(staging.join("photos/1")).unwrap(),
            b"png bytes"
        );
        assert_eq!(
            files(&root),
            [
                "a.tar",
                "staging/manifest.jsonl",
                "staging/photos/0",
                "staging/photos/1"
            ]
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_decompression_bomb_and_too_many_entries_refuse_the_collection() {
        let root = scratch("bomb");
        // 64 entries of 64 KiB - 1 of zeros (each within the photo limit), 4 MiB in all once
        // unpacked, a few KiB gzipped: past the 1 MiB collection limit.
        let mut b = tar::Builder::new(Vec::new());
        for i in 0..64 {
            raw_entry(
                &mut b,
                format!("z{i}.jpg").as_bytes(),
                tar::EntryType::Regular,
                &vec![0u8; (64 << 10) - 1],
            );
        }
        let tar_bytes = b.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut gz, &tar_bytes).unwrap();
        let gz = gz.finish().unwrap();
        assert!(gz.len() < 64 << 10, "{} bytes gzipped", gz.len());
        let archive = root.join("bomb.tar.gz");
        std::fs::write(&archive, &gz).unwrap();
        let limits = IntakeLimits {
            max_photos: 1000,
            ..LIMITS
        };
        let mut intake = Intake::new(root.join("staging"), limits).unwrap();
        let err = intake.unpack(&archive).unwrap_err();
        assert!(matches!(err, IntakeError::TooManyBytes(_)), "{err}");

        // More photos than allowed.
        let mut intake = Intake::new(root.join("staging2"), LIMITS).unwrap();
        let err = intake.unpack(&archive).unwrap_err();
        assert!(matches!(err, IntakeError::TooManyPhotos(10)), "{err}");

        // Not an archive at all.
        std::fs::write(root.join("notes.txt"), b"just some text, not a tar").unwrap();
        let mut intake = Intake::new(root.join("staging3"), LIMITS).unwrap();
        let err = intake.unpack(&root.join("notes.txt")).unwrap_err();
        assert!(matches!(err, IntakeError::BadArchive(_)), "{err}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn tar_headers_and_passed_over_entries_are_bounded_too() {
        let root = scratch("tar-bounds");
        // A GNU long name of 1 MiB: the tar crate would read it whole into memory.
        let mut b = tar::Builder::new(Vec::new());
        raw_entry(
            &mut b,
            b"././@LongLink",
            tar::EntryType::GNULongName,
            &vec![b'a'; 1 << 20],
        );
        raw_entry(&mut b, b"x.jpg", tar::EntryType::Regular, b"x");
        let archive = root.join("longname.tar");
        std::fs::write(&archive, b.into_inner().unwrap()).unwrap();
        let mut intake = Intake::new(root.join("s1"), LIMITS).unwrap();
        let err = intake.unpack(&archive).unwrap_err();
        assert!(
            err.to_string()
                .contains("a tar header entry of 1048576 bytes"),
            "{err}"
        );

        // A sane long name is taken as the entry's name.
        let mut b = tar::Builder::new(Vec::new());
        let long = format!("{}/photo.jpg", "d".repeat(150));
        raw_entry(
            &mut b,
            b"././@LongLink",
            tar::EntryType::GNULongName,
            long.as_bytes(),
        );
        raw_entry(&mut b, b"truncated", tar::EntryType::Regular, b"jpeg");
        let archive = root.join("sane.tar");
        std::fs::write(&archive, b.into_inner().unwrap()).unwrap();
        let mut intake = Intake::new(root.join("s2"), LIMITS).unwrap();
        intake.unpack(&archive).unwrap();
        intake.finish().unwrap();
        assert_eq!(manifest(&root.join("s2"))[0].name, long);

        // 4 MiB of zeros in one directory entry and one FIFO entry: passed over and refused,
        // but still unpacked, and counted: past the 1 MiB collection limit.
        let mut b = tar::Builder::new(Vec::new());
        raw_entry(
            &mut b,
            b"dir/",
            tar::EntryType::Directory,
            &vec![0u8; 2 << 20],
        );
        raw_entry(&mut b, b"fifo", tar::EntryType::Fifo, &vec![0u8; 2 << 20]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut gz, &b.into_inner().unwrap()).unwrap();
        let archive = root.join("skipped.tar.gz");
        std::fs::write(&archive, gz.finish().unwrap()).unwrap();
        let mut intake = Intake::new(root.join("s3"), LIMITS).unwrap();
        let err = intake.unpack(&archive).unwrap_err();
        assert!(matches!(err, IntakeError::TooManyBytes(_)), "{err}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_zip_declaring_more_entries_than_allowed_is_refused_before_it_is_read() {
        let root = scratch("zip-count");
        // An end-of-central-directory record alone, declaring 60,000 entries.
        let mut eocd = b"PK\x05\x06".to_vec();
        eocd.extend_from_slice(&[0, 0, 0, 0]);
        eocd.extend_from_slice(&60_000u16.to_le_bytes());
        eocd.extend_from_slice(&60_000u16.to_le_bytes());
        eocd.extend_from_slice(&[0; 8]);
        eocd.extend_from_slice(&[0, 0]);
        let archive = root.join("many.zip");
        std::fs::write(&archive, &eocd).unwrap();
        assert_eq!(zip_entry_count(&archive).unwrap(), Some(60_000));
        let mut intake = Intake::new(root.join("s"), LIMITS).unwrap();
        let err = intake.unpack(&archive).unwrap_err();
        assert!(matches!(err, IntakeError::TooManyPhotos(10)), "{err}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn zip_entries_with_escaping_names_are_refused() {
        let root = scratch("zip");
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in [
            ("ok/a.jpg", &b"a"[..]),
            ("../../escape.jpg", b"b"),
            ("/abs.jpg", b"c"),
            ("ok/b.png", b"d"),
        ] {
            w.start_file(name, opts).unwrap();
            std::io::Write::write_all(&mut w, data).unwrap();
        }
        w.add_symlink("link.jpg", "/etc/passwd", opts).unwrap();
        // A bomb entry: 2 MiB of zeros, deflated to a few KiB.
        w.start_file("zeros.jpg", opts).unwrap();
        std::io::Write::write_all(&mut w, &vec![0u8; 2 << 20]).unwrap();
        let bytes = w.finish().unwrap().into_inner();
        let archive = root.join("a.zip");
        std::fs::write(&archive, bytes).unwrap();
        let staging = root.join("staging");
        let mut intake = Intake::new(staging.clone(), LIMITS).unwrap();
        intake.unpack(&archive).unwrap();
        let intake = intake.finish().unwrap();
        assert_eq!((intake.photos, intake.refused), (2, 4));
        let entries = manifest(&staging);
        let refused: Vec<(&str, &str)> = entries
            .iter()
            .filter_map(|e| Some((e.name.as_str(), e.error.as_deref()?)))
            .collect();
        assert!(
            refused
                .iter()
                .any(|(n, w)| *n == "../../escape.jpg" && w.contains("leaves")),
            "{refused:?}"
        );
        assert!(
            refused
                .iter()
                .any(|(n, w)| *n == "/abs.jpg" && w.contains("leaves")),
            "{refused:?}"
        );
        assert!(
            refused
                .iter()
                .any(|(n, w)| *n == "link.jpg" && w.contains("link")),
            "{refused:?}"
        );
        assert!(
            refused
                .iter()
                .any(|(n, w)| *n == "zeros.jpg" && w.contains("larger")),
            "{refused:?}"
        );
        // The 2 MiB entry stopped one byte past the 64 KiB limit.
        assert!(intake.bytes <= (64 << 10) + 8, "{}", intake.bytes);
        assert_eq!(files(&staging), ["manifest.jsonl", "photos/0", "photos/1"]);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
