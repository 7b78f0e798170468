//! Report photos: the type is decided by content (magic bytes), never by the file name, and the
//! stored copy has its metadata removed — EXIF (GPS position, camera serial), XMP and text
//! chunks — by rewriting the container without those segments; the image data is untouched.

use super::intake::Photo;

/// Largest photo accepted.
pub const MAX_PHOTO_BYTES: usize = 5 * 1024 * 1024;
/// Most photos per report.
pub const MAX_PHOTOS: usize = 3;

/// Check one uploaded file and return the stripped copy to store.
pub fn check_and_strip(bytes: &[u8]) -> Result<Photo, String> {
    if bytes.len() > MAX_PHOTO_BYTES {
        return Err(format!("a photo may have at most {MAX_PHOTO_BYTES} bytes"));
    }
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return strip_jpeg(bytes).map(|bytes| Photo { media_type: "image/jpeg", bytes });
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return strip_png(bytes).map(|bytes| Photo { media_type: "image/png", bytes });
    }
    if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        return strip_webp(bytes).map(|bytes| Photo { media_type: "image/webp", bytes });
    }
    Err("not a JPEG, PNG or WebP image (checked by content)".into())
}

/// Drop APP1 (EXIF, XMP) and APP13 (IPTC) segments; copy everything from the scan on.
fn strip_jpeg(b: &[u8]) -> Result<Vec<u8>, String> {
    let bad = || "a damaged JPEG".to_string();
    let mut out = Vec::with_capacity(b.len());
    out.extend_from_slice(&b[..2]);
    let mut i = 2;
    loop {
        if i + 4 > b.len() || b[i] != 0xFF {
            return Err(bad());
        }
        let marker = b[i + 1];
        if marker == 0xFF {
            i += 1; // fill byte
            continue;
        }
        if marker == 0xDA || marker == 0xD9 {
            out.extend_from_slice(&b[i..]);
            return Ok(out);
        }
        let len = usize::from(u16::from_be_bytes([b[i + 2], b[i + 3]]));
        if len < 2 || i + 2 + len > b.len() {
            return Err(bad());
        }
        if marker != 0xE1 && marker != 0xED {
            out.extend_from_slice(&b[i..i + 2 + len]);
        }
        i += 2 + len;
    }
}

/// Drop eXIf and the text chunks (tEXt, zTXt, iTXt — XMP lives there).
fn strip_png(b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(b.len());
    out.extend_from_slice(&b[..8]);
    let mut i = 8;
    while i + 12 <= b.len() {
        let len = u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as usize;
        let end = i.checked_add(12 + len).filter(|e| *e <= b.len()).ok_or("a damaged PNG")?;
        let kind = &b[i + 4..i + 8];
        if !matches!(kind, b"eXIf" | b"tEXt" | b"zTXt" | b"iTXt") {
            out.extend_from_slice(&b[i..end]);
        }
        i = end;
        if kind == b"IEND" {
            return Ok(out);
        }
    }
    Err("a damaged PNG".into())
}

/// Drop the EXIF and XMP chunks and clear their flags in VP8X; fix the RIFF size.
fn strip_webp(b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(b.len());
    out.extend_from_slice(&b[..12]);
    let mut i = 12;
    while i + 8 <= b.len() {
        let len = u32::from_le_bytes([b[i + 4], b[i + 5], b[i + 6], b[i + 7]]) as usize;
        let padded = len + (len & 1);
        let end = (i + 8 + padded).min(b.len());
        if i + 8 + len > b.len() {
            return Err("a damaged WebP".into());
        }
        let kind = &b[i..i + 4];
        if kind == b"VP8X" && len >= 1 {
            let start = out.len();
            out.extend_from_slice(&b[i..end]);
            out[start + 8] &= !(0x08 | 0x04);
        } else if kind != b"EXIF" && kind != b"XMP " {
            out.extend_from_slice(&b[i..end]);
        }
        i = end;
    }
    let size = u32::try_from(out.len() - 8).map_err(|_| "a damaged WebP".to_string())?;
    out[4..8].copy_from_slice(&size.to_le_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal JPEG-shaped byte string with an EXIF segment carrying a GPS marker text.
    pub fn jpeg_with_exif() -> Vec<u8> {
        let mut b = vec![0xFF, 0xD8];
        let exif = b"Exif\0\0GPSLatitude=36.18";
        b.extend_from_slice(&[0xFF, 0xE1]);
        b.extend_from_slice(&((exif.len() + 2) as u16).to_be_bytes());
        b.extend_from_slice(exif);
        b.extend_from_slice(&[0xFF, 0xDB, 0x00, 0x04, 0x01, 0x02]);
        b.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x02, 0x11, 0x22, 0xFF, 0xD9]);
        b
    }

    #[test]
    fn jpeg_exif_is_removed_and_the_rest_kept() {
        let photo = check_and_strip(&jpeg_with_exif()).expect("a JPEG");
        assert_eq!(photo.media_type, "image/jpeg");
        assert!(!photo.bytes.windows(11).any(|w| w == b"GPSLatitude"));
        assert!(photo.bytes.ends_with(&[0xFF, 0xDA, 0x00, 0x02, 0x11, 0x22, 0xFF, 0xD9]));
        assert!(photo.bytes.windows(2).any(|w| w == [0xFF, 0xDB]));
    }

    #[test]
    fn png_exif_chunk_is_removed() {
        let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
        for (kind, data) in [(&b"IHDR"[..], &b"0123456789abc"[..]), (b"eXIf", b"GPSLatitude"), (b"IEND", b"")] {
            b.extend_from_slice(&(data.len() as u32).to_be_bytes());
            b.extend_from_slice(kind);
            b.extend_from_slice(data);
            b.extend_from_slice(&[0, 0, 0, 0]);
        }
        let photo = check_and_strip(&b).expect("a PNG");
        assert!(!photo.bytes.windows(4).any(|w| w == b"eXIf"));
        assert!(photo.bytes.windows(4).any(|w| w == b"IHDR"));
    }

    #[test]
    fn a_renamed_text_file_is_refused() {
        assert!(check_and_strip(b"GIF89a not allowed").is_err());
        assert!(check_and_strip(b"hello, I am a .jpg by name only").is_err());
    }
}
