//! Report photos: the type is decided by content (magic bytes), never by the file name, and the
//! stored copy keeps only what a decoder needs, by rewriting the container from an allow-list of
//! segments / chunks; the image data is untouched. A deny-list of known metadata (EXIF, XMP)
//! let the rest through: JPEG comments, C2PA manifests (APP11, PNG `caBX` — they can hold a
//! location), maker notes in other `APPn` segments, and whatever a future camera invents.

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

/// Keep only the segments a decoder needs — frame headers (`SOFn`), Huffman and quantisation
/// tables, arithmetic conditioning, restart interval, DNL, the scans — and three `APPn` that change
/// how the picture looks: APP0 JFIF, APP2 ICC profile, APP14 Adobe (colour transform). Everything
/// else goes: COM, APP1 (EXIF, XMP), APP11 (C2PA/JUMBF), APP13 (IPTC), every other `APPn`, and
/// everything after the end-of-image marker: phones append a second JPEG (with its own EXIF) or a "motion photo"
/// MP4 (with its own location) there, which viewers never show but a download would carry.
/// The entropy-coded scan data is copied as it is; a progressive JPEG's further tables and
/// scans between it are segments like any other.
fn strip_jpeg(b: &[u8]) -> Result<Vec<u8>, String> {
    let bad = || "a damaged JPEG".to_string();
    let mut out = Vec::with_capacity(b.len());
    out.extend_from_slice(&b[..2]);
    let mut i = 2;
    loop {
        if i + 2 > b.len() || b[i] != 0xFF {
            return Err(bad());
        }
        let marker = b[i + 1];
        if marker == 0xFF {
            i += 1; // fill byte
            continue;
        }
        if marker == 0xD9 {
            out.extend_from_slice(&b[i..i + 2]);
            return Ok(out);
        }
        if i + 4 > b.len() {
            return Err(bad());
        }
        let len = usize::from(u16::from_be_bytes([b[i + 2], b[i + 3]]));
        if len < 2 || i + 2 + len > b.len() {
            return Err(bad());
        }
        let mut end = i + 2 + len;
        if marker == 0xDA {
            end = scan_end(b, end);
            if end == b.len() {
                // No end-of-image marker: keep the (truncated) scan as it came.
                out.extend_from_slice(&b[i..]);
                return Ok(out);
            }
        }
        if jpeg_keeps(marker, &b[i + 4..i + 2 + len]) {
            out.extend_from_slice(&b[i..end]);
        }
        i = end;
    }
}

/// The JPEG allow-list (see `strip_jpeg`); `payload` is the segment after its length.
fn jpeg_keeps(marker: u8, payload: &[u8]) -> bool {
    match marker {
        // SOF0–SOF15 with DHT (C4) and DAC (CC) among them (C8 is reserved); SOS, DQT, DNL, DRI.
        0xC0..=0xC7 | 0xC9..=0xCF | 0xDA..=0xDD => true,
        0xE0 => payload.starts_with(b"JFIF\0"),
        0xE2 => payload.starts_with(b"ICC_PROFILE\0"),
        0xEE => payload.starts_with(b"Adobe"),
        _ => false,
    }
}

/// Where the entropy-coded data that starts at `i` ends: the first marker that is neither a
/// stuffed 0xFF (`FF 00`), a restart marker (`FF D0`–`FF D7`) nor fill (`FF FF`).
fn scan_end(b: &[u8], mut i: usize) -> usize {
    while i + 1 < b.len() {
        if b[i] == 0xFF && !matches!(b[i + 1], 0x00 | 0xD0..=0xD7 | 0xFF) {
            return i;
        }
        i += 1;
    }
    b.len()
}

/// PNG chunks kept: the critical ones, colour and transparency (how the picture looks), pixel
/// size, and APNG's frames. Dropped: eXIf, the text chunks (tEXt, zTXt, iTXt — XMP lives
/// there), tIME, C2PA's caBX and every other chunk.
const PNG_KEEP: [&[u8; 4]; 18] = [
    b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT", b"bKGD", b"pHYs",
    b"cICP", b"mDCV", b"cLLI", b"acTL", b"fcTL", b"fdAT",
];

/// Keep the chunks of `PNG_KEEP`, in order, up to IEND.
fn strip_png(b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(b.len());
    out.extend_from_slice(&b[..8]);
    let mut i = 8;
    while i + 12 <= b.len() {
        let len = u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as usize;
        let end = i.checked_add(12 + len).filter(|e| *e <= b.len()).ok_or("a damaged PNG")?;
        let kind = &b[i + 4..i + 8];
        if PNG_KEEP.iter().any(|k| k.as_slice() == kind) {
            out.extend_from_slice(&b[i..end]);
        }
        i = end;
        if kind == b"IEND" {
            return Ok(out);
        }
    }
    Err("a damaged PNG".into())
}

/// WebP chunks kept: the image (VP8, VP8L, ALPH), the extended header, animation and the ICC
/// profile. Dropped: EXIF, XMP and any other chunk.
const WEBP_KEEP: [&[u8; 4]; 7] = [b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ANIM", b"ANMF", b"ICCP"];

/// Keep the chunks of `WEBP_KEEP`, clear the EXIF and XMP flags in VP8X, fix the RIFF size.
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
        } else if WEBP_KEEP.iter().any(|k| k.as_slice() == kind) {
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

    /// An EXIF block as cameras write it (binary TIFF, little-endian): IFD0 points to a GPS IFD
    /// holding latitude 36°10'30" N — the tag numbers a reader looks for, not a text marker.
    fn exif_with_gps() -> Vec<u8> {
        let mut t = b"II*\0".to_vec();
        t.extend_from_slice(&8u32.to_le_bytes()); // IFD0 at 8
        t.extend_from_slice(&1u16.to_le_bytes());
        t.extend_from_slice(&[0x25, 0x88, 4, 0, 1, 0, 0, 0]); // GPSInfo (0x8825), LONG, 1
        t.extend_from_slice(&26u32.to_le_bytes()); // GPS IFD at 26
        t.extend_from_slice(&0u32.to_le_bytes());
        t.extend_from_slice(&2u16.to_le_bytes());
        t.extend_from_slice(&[1, 0, 2, 0, 2, 0, 0, 0, b'N', 0, 0, 0]); // GPSLatitudeRef "N"
        t.extend_from_slice(&[2, 0, 5, 0, 3, 0, 0, 0]); // GPSLatitude, RATIONAL, 3
        t.extend_from_slice(&56u32.to_le_bytes());
        t.extend_from_slice(&0u32.to_le_bytes());
        for (n, d) in [(36u32, 1u32), (10, 1), (3000, 100)] {
            t.extend_from_slice(&n.to_le_bytes());
            t.extend_from_slice(&d.to_le_bytes());
        }
        t
    }

    fn picture() -> image::RgbImage {
        image::RgbImage::from_fn(24, 16, |x, y| image::Rgb([(x * 10) as u8, (y * 15) as u8, 128]))
    }

    fn encoded(format: image::ImageFormat) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(picture()).write_to(&mut out, format).expect("encode");
        out.into_inner()
    }

    fn jpeg_segment(marker: u8, payload: &[u8]) -> Vec<u8> {
        let mut s = vec![0xFF, marker];
        s.extend_from_slice(&u16::try_from(payload.len() + 2).expect("small").to_be_bytes());
        s.extend_from_slice(payload);
        s
    }

    #[test]
    fn a_real_jpeg_loses_its_gps_exif_and_what_follows_the_image_and_keeps_every_other_byte() {
        let clean = encoded(image::ImageFormat::Jpeg);
        let exif = jpeg_segment(0xE1, &[b"Exif\0\0".as_slice(), &exif_with_gps()].concat());
        // EXIF after SOI, XMP (APP1 too) between the scan and EOI, and a phone's trailer: a
        // second JPEG with its own EXIF, then a motion photo's MP4 header.
        let eoi = clean.len() - 2;
        assert_eq!(&clean[eoi..], [0xFF, 0xD9]);
        let xmp = jpeg_segment(0xE1, b"http://ns.adobe.com/xap/1.0/\0<exif:GPSLatitude>36,10.5N</exif:GPSLatitude>");
        let mut tampered = [&clean[..2], &exif, &clean[2..eoi], &xmp, &clean[eoi..]].concat();
        tampered.extend_from_slice(&[&clean[..2], &exif, &clean[2..]].concat());
        tampered.extend_from_slice(b"\0\0\0\x18ftypmp42 motion photo");

        let photo = check_and_strip(&tampered).expect("a JPEG");
        assert_eq!(photo.media_type, "image/jpeg");
        assert_eq!(photo.bytes, clean, "exactly the encoder's bytes again");
        let pixels = image::load_from_memory(&photo.bytes).expect("still decodes").to_rgb8();
        assert_eq!(pixels, image::load_from_memory(&clean).expect("decodes").to_rgb8());
    }

    #[test]
    fn a_jpeg_loses_its_comment_c2pa_and_every_app_segment_not_allowed() {
        let clean = encoded(image::ImageFormat::Jpeg);
        let comment = jpeg_segment(0xFE, b"shot at 36.18N 118.17E by rider 13800000000");
        // APP11 carries C2PA manifests as JUMBF boxes; they may record where a photo was taken.
        let c2pa = jpeg_segment(0xEB, b"JP\0\0\0\0\0\x01jumbc2pa GPSLatitude 36.18");
        let others: Vec<u8> = [0xE3, 0xE5, 0xE9, 0xEC, 0xED, 0xEF]
            .iter()
            .flat_map(|m| jpeg_segment(*m, b"maker note GPSLatitude"))
            .collect();
        let jfxx = jpeg_segment(0xE0, b"JFXX\0\x10 a thumbnail");
        let icc_lookalike = jpeg_segment(0xE2, b"MPF\0 GPSLatitude");
        let tampered = [
            &clean[..2],
            &comment,
            &c2pa,
            &others,
            &jfxx,
            &icc_lookalike,
            &clean[2..clean.len() - 2],
            &comment,
            &clean[clean.len() - 2..],
        ]
        .concat();
        let photo = check_and_strip(&tampered).expect("a JPEG");
        assert_eq!(photo.bytes, clean, "exactly the encoder's bytes again");
        // What a decoder needs survives: an ICC profile and the Adobe segment stay.
        let icc = jpeg_segment(0xE2, b"ICC_PROFILE\0\x01\x01profile");
        let adobe = jpeg_segment(0xEE, b"Adobe\0d\0\0\0\0\x01");
        let kept = [&clean[..2], &icc, &adobe, &clean[2..]].concat();
        assert_eq!(check_and_strip(&kept).expect("a JPEG").bytes, kept);
    }

    #[test]
    fn a_jpeg_scan_keeps_its_stuffed_bytes_and_restart_markers() {
        let scan = [0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56, 0xFF, 0xFF, 0xD7, 0x78];
        let jpeg = [&[0xFF, 0xD8][..], &jpeg_segment(0xDA, &[1, 2, 3]), &scan, &[0xFF, 0xD9], b"trailer"].concat();
        let photo = check_and_strip(&jpeg).expect("a JPEG");
        assert_eq!(photo.bytes, jpeg[..jpeg.len() - b"trailer".len()]);
    }

    #[test]
    fn a_real_png_keeps_only_allowed_chunks_so_exif_text_time_and_c2pa_go() {
        let clean = encoded(image::ImageFormat::Png);
        let chunk = |kind: &[u8], data: &[u8]| {
            [&u32::try_from(data.len()).expect("small").to_be_bytes()[..], kind, data, &[0, 0, 0, 0]].concat()
        };
        let ihdr_end = 8 + 8 + 13 + 4;
        let tampered = [
            &clean[..ihdr_end],
            &chunk(b"eXIf", &exif_with_gps()),
            &chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0<exif:GPSLatitude/>"),
            &chunk(b"caBX", b"jumbc2pa GPSLatitude 36.18"),
            &chunk(b"tIME", b"\x07\xea\x0c\x06\x04\x00\x00"),
            &clean[ihdr_end..],
        ]
        .concat();
        let photo = check_and_strip(&tampered).expect("a PNG");
        assert_eq!(photo.media_type, "image/png");
        assert_eq!(photo.bytes, clean);
    }

    #[test]
    fn a_real_webp_keeps_only_allowed_chunks_so_exif_xmp_and_c2pa_go_and_it_still_decodes() {
        let simple = encoded(image::ImageFormat::WebP); // RIFF, WEBP, one VP8L chunk
        assert_eq!(&simple[12..16], b"VP8L");
        let chunk = |kind: &[u8], data: &[u8]| {
            let pad: &[u8] = if data.len() % 2 == 1 { &[0] } else { &[] };
            [kind, &u32::try_from(data.len()).expect("small").to_le_bytes()[..], data, pad].concat()
        };
        // The extended form a phone writes: VP8X (flags: EXIF 0x08, XMP 0x04), image, EXIF, XMP.
        let (w, h) = (24u32 - 1, 16u32 - 1);
        let vp8x = [&[0x08 | 0x04, 0, 0, 0][..], &w.to_le_bytes()[..3], &h.to_le_bytes()[..3]].concat();
        let body = [
            b"WEBP".as_slice(),
            &chunk(b"VP8X", &vp8x),
            &simple[12..],
            &chunk(b"EXIF", &exif_with_gps()),
            &chunk(b"XMP ", b"<x:xmpmeta><exif:GPSLatitude>36,10.5N</exif:GPSLatitude></x:xmpmeta>"),
            &chunk(b"C2PA", b"jumbc2pa GPSLatitude 36.18"),
        ]
        .concat();
        let tampered = [b"RIFF".as_slice(), &u32::try_from(body.len()).expect("small").to_le_bytes(), &body].concat();
        assert!(image::load_from_memory(&tampered).is_ok(), "the tampered file is a valid WebP");

        let photo = check_and_strip(&tampered).expect("a WebP");
        assert_eq!(photo.media_type, "image/webp");
        let b = &photo.bytes;
        assert!(!b.windows(4).any(|w| w == b"EXIF" || w == b"XMP "), "chunks gone");
        assert!(!b.windows(11).any(|w| w == b"GPSLatitude"));
        assert_eq!(b[20] & (0x08 | 0x04), 0, "VP8X no longer announces EXIF or XMP");
        assert_eq!(u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize, b.len() - 8, "RIFF size fixed");
        let pixels = image::load_from_memory(b).expect("still decodes").to_rgb8();
        assert_eq!(pixels, picture(), "lossless: the very pixels");
    }

    #[test]
    fn a_renamed_text_file_is_refused() {
        assert!(check_and_strip(b"GIF89a not allowed").is_err());
        assert!(check_and_strip(b"hello, I am a .jpg by name only").is_err());
    }
}
