//! Reading compressed answers: the `Content-Encoding` of a response, and its body decoded into a
//! bounded buffer for classification and reports. The caller's bytes are never touched.

use std::io::Read;

use http::{header, HeaderMap};

/// A content coding this crate can decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coding {
    /// `gzip` (and `x-gzip`).
    Gzip,
    /// `deflate`: zlib-wrapped, or raw deflate as some servers send it.
    Deflate,
    /// `br`, with the `brotli` feature.
    #[cfg(feature = "brotli")]
    Brotli,
    /// `zstd`, with the `zstd` feature.
    #[cfg(feature = "zstd")]
    Zstd,
}

impl Coding {
    /// The coding's name in `Content-Encoding`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            #[cfg(feature = "brotli")]
            Coding::Brotli => "br",
            #[cfg(feature = "zstd")]
            Coding::Zstd => "zstd",
        }
    }
}

/// How a response's body is encoded, as its `Content-Encoding` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// Not encoded (no header, or `identity`).
    Identity,
    /// One coding this crate decodes.
    Decodable(Coding),
    /// Another coding (`br` or `zstd` without their features, `compress`), or several stacked:
    /// the body cannot be read here.
    Other,
}

/// The encoding `headers` announce.
pub(crate) fn encoding_of(headers: &HeaderMap) -> Encoding {
    // Most answers carry no Content-Encoding: one lookup, no iteration.
    if !headers.contains_key(header::CONTENT_ENCODING) {
        return Encoding::Identity;
    }
    let mut codings = headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case(b"identity"));
    let Some(first) = codings.next() else {
        return Encoding::Identity;
    };
    if codings.next().is_some() {
        return Encoding::Other;
    }
    if first.eq_ignore_ascii_case(b"gzip") || first.eq_ignore_ascii_case(b"x-gzip") {
        Encoding::Decodable(Coding::Gzip)
    } else if first.eq_ignore_ascii_case(b"deflate") {
        Encoding::Decodable(Coding::Deflate)
    } else {
        other_coding(first)
    }
}

/// `br` and `zstd`, when their features are on.
fn other_coding(coding: &[u8]) -> Encoding {
    #[cfg(feature = "brotli")]
    if coding.eq_ignore_ascii_case(b"br") {
        return Encoding::Decodable(Coding::Brotli);
    }
    #[cfg(feature = "zstd")]
    if coding.eq_ignore_ascii_case(b"zstd") {
        return Encoding::Decodable(Coding::Zstd);
    }
    let _ = coding;
    Encoding::Other
}

/// `body` decoded, at most `limit` bytes of it, and whether that is all of it (the input was
/// whole and decoded to its end within the limit). A decompression bomb costs `limit` bytes.
/// Input cut short decodes as far as it goes.
pub(crate) fn decode(coding: Coding, body: &[u8], limit: usize) -> (Vec<u8>, bool) {
    match coding {
        Coding::Gzip => read_bounded(flate2::read::MultiGzDecoder::new(body), limit),
        Coding::Deflate => {
            let (zlib, complete) = read_bounded(flate2::read::ZlibDecoder::new(body), limit);
            if complete || !zlib.is_empty() {
                return (zlib, complete);
            }
            read_bounded(flate2::read::DeflateDecoder::new(body), limit)
        }
        #[cfg(feature = "brotli")]
        Coding::Brotli => read_bounded(brotli_decompressor::Decompressor::new(body, 4096), limit),
        #[cfg(feature = "zstd")]
        Coding::Zstd => match ruzstd::decoding::StreamingDecoder::new(body) {
            Ok(decoder) => read_bounded(decoder, limit),
            Err(_) => (Vec::new(), false),
        },
    }
}

fn read_bounded(reader: impl Read, limit: usize) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    // One byte past the limit tells a body that fits from one that does not.
    let mut reader = reader.take((limit as u64).saturating_add(1));
    let complete = reader.read_to_end(&mut out).is_ok() && out.len() <= limit;
    out.truncate(limit);
    (out, complete)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn encodings_are_read_from_the_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(encoding_of(&headers), Encoding::Identity);
        headers.insert(header::CONTENT_ENCODING, "GZIP".parse().unwrap());
        assert_eq!(encoding_of(&headers), Encoding::Decodable(Coding::Gzip));
        headers.insert(header::CONTENT_ENCODING, "deflate".parse().unwrap());
        assert_eq!(encoding_of(&headers), Encoding::Decodable(Coding::Deflate));
        headers.insert(header::CONTENT_ENCODING, "compress".parse().unwrap());
        assert_eq!(encoding_of(&headers), Encoding::Other);
        headers.insert(header::CONTENT_ENCODING, "gzip, br".parse().unwrap());
        assert_eq!(encoding_of(&headers), Encoding::Other);
        headers.insert(header::CONTENT_ENCODING, "identity".parse().unwrap());
        assert_eq!(encoding_of(&headers), Encoding::Identity);
    }

    #[test]
    fn bodies_decode_within_the_limit_and_bombs_stop_at_it() {
        let json = br#"{"error":{"code":"insufficient_quota"}}"#;
        assert_eq!(
            decode(Coding::Gzip, &gzip(json), 1024),
            (json.to_vec(), true)
        );
        let bomb = gzip(&vec![b'a'; 10 << 20]);
        let (out, complete) = decode(Coding::Gzip, &bomb, 64 * 1024);
        assert_eq!(out.len(), 64 * 1024);
        assert!(!complete);
        let cut = gzip(json);
        let (out, complete) = decode(Coding::Gzip, &cut[..cut.len() - 8], 1024);
        assert!(!complete);
        assert!(json.starts_with(&out));
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        zlib.write_all(json).unwrap();
        assert_eq!(
            decode(Coding::Deflate, &zlib.finish().unwrap(), 1024),
            (json.to_vec(), true)
        );
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        raw.write_all(json).unwrap();
        assert_eq!(
            decode(Coding::Deflate, &raw.finish().unwrap(), 1024),
            (json.to_vec(), true)
        );
        assert!(!decode(Coding::Gzip, b"not gzip", 1024).1);
    }

    /// `{"error":{"message":"You exceeded your current quota","type":"insufficient_quota",
    /// "code":"insufficient_quota"}}` compressed with brotli's reference encoder.
    #[cfg(feature = "brotli")]
    const QUOTA_BR: &[u8] = &[
        0x1b, 0x6e, 0x00, 0x60, 0x8d, 0xd3, 0x15, 0xf3, 0x23, 0x84, 0x75, 0x0f, 0xca, 0x6d, 0xa9,
        0x8e, 0xab, 0xcd, 0x24, 0xb2, 0xff, 0x3c, 0x04, 0x07, 0xc2, 0x52, 0x87, 0xa5, 0xcf, 0x0d,
        0x0e, 0x48, 0x32, 0x0e, 0x83, 0x02, 0x4e, 0x24, 0xb2, 0xd1, 0x87, 0x1d, 0xb0, 0xf5, 0xe2,
        0x51, 0x86, 0xb2, 0x18, 0xe0, 0x03, 0xab, 0x3a, 0xfc, 0xd3, 0x96, 0xe5, 0x10, 0x7f, 0x99,
        0xdb, 0xf5, 0x0e, 0xb1, 0xd2, 0x01, 0x72, 0x68, 0x87, 0x48, 0x96, 0xfc,
    ];

    #[cfg(feature = "brotli")]
    #[test]
    fn brotli_decodes_with_its_feature() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_ENCODING, "br".parse().unwrap());
        assert_eq!(encoding_of(&headers), Encoding::Decodable(Coding::Brotli));
        let (text, complete) = decode(Coding::Brotli, QUOTA_BR, 1024);
        assert!(complete);
        assert!(text.starts_with(br#"{"error":{"message":"You exceeded"#));
        let (text, complete) = decode(Coding::Brotli, QUOTA_BR, 16);
        assert_eq!((text.len(), complete), (16, false));
    }

    #[cfg(feature = "zstd")]
    #[test]
    fn zstd_decodes_with_its_feature_and_bombs_stop_at_the_limit() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_ENCODING, "zstd".parse().unwrap());
        assert_eq!(encoding_of(&headers), Encoding::Decodable(Coding::Zstd));
        let json = br#"{"error":{"code":"insufficient_quota"}}"#;
        let compressed = ruzstd::encoding::compress_to_vec(
            &json[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        assert_eq!(
            decode(Coding::Zstd, &compressed, 1024),
            (json.to_vec(), true)
        );
        let bomb = ruzstd::encoding::compress_to_vec(
            &vec![b'a'; 4 << 20][..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        let (out, complete) = decode(Coding::Zstd, &bomb, 64 * 1024);
        assert_eq!((out.len(), complete), (64 * 1024, false));
        assert!(!decode(Coding::Zstd, b"not zstd", 1024).1);
    }
}
