//! Avatar images: check, decode under limits, re-encode.
//!
//! An upload is never stored or served as sent. Its bytes must be an image
//! of the declared type (PNG, JPEG or WebP, recognized by their signature
//! and then decoded by the `image` crate); the decoder runs under limits
//! (at most 4096×4096 pixels, a bounded allocation), so a decompression
//! bomb is refused before its pixels are allocated; a truncated file fails
//! to decode. The pixels are then turned upright (EXIF orientation), cut to
//! a centred square, scaled to 256×256 and encoded as a fresh PNG: no
//! uploaded byte, EXIF or GPS tag or other metadata survives.
//!
//! Decoding is CPU work: callers run it on the blocking pool, holding a
//! [`decode_permit`]: at most [`decode_limit`] decodes (the CPU count) run
//! at once, so memory stays under that many times the decoder's allocation
//! bound whatever the number of simultaneous uploads.

use std::io::Cursor;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use sha2::{Digest, Sha256};

/// Side of the stored square image, in pixels.
pub const AVATAR_SIDE: u32 = 256;
/// Largest accepted width and height of an upload, in pixels.
pub const MAX_DIMENSION: u32 = 4096;
/// Largest allocation the decoder may make (a 4096×4096 RGBA image and
/// some slack).
const MAX_ALLOC: u64 = 4096 * 4096 * 4 + 16 * 1024 * 1024;

/// Media type of every stored avatar.
pub const STORED_TYPE: &str = "image/png";

/// An upload format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadType {
    /// `image/png`
    Png,
    /// `image/jpeg`
    Jpeg,
    /// `image/webp`
    Webp,
}

impl UploadType {
    /// The type of a `Content-Type` value (parameters ignored), if accepted.
    pub fn from_media_type(media_type: &str) -> Option<Self> {
        let essence = media_type.split(';').next().unwrap_or("").trim();
        match essence.to_ascii_lowercase().as_str() {
            "image/png" => Some(Self::Png),
            "image/jpeg" | "image/jpg" => Some(Self::Jpeg),
            "image/webp" => Some(Self::Webp),
            _ => None,
        }
    }

    /// The type the bytes' signature says, if one of ours.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        match image::guess_format(bytes).ok()? {
            ImageFormat::Png => Some(Self::Png),
            ImageFormat::Jpeg => Some(Self::Jpeg),
            ImageFormat::WebP => Some(Self::Webp),
            _ => None,
        }
    }

    fn format(self) -> ImageFormat {
        match self {
            Self::Png => ImageFormat::Png,
            Self::Jpeg => ImageFormat::Jpeg,
            Self::Webp => ImageFormat::WebP,
        }
    }
}

/// Why an upload was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// The bytes are not a (complete, decodable) image of the declared type.
    #[error("the body is not a complete image of the declared type")]
    NotAnImage,
    /// Wider or taller than [`MAX_DIMENSION`], or too large to decode.
    #[error("the image is larger than 4096×4096 pixels")]
    TooLarge,
    /// Re-encoding failed (not the client's fault).
    #[error("the image could not be re-encoded")]
    Encode,
}

/// A re-encoded avatar.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// The PNG bytes.
    pub bytes: Vec<u8>,
    /// A strong entity tag: the start of the SHA-256 of `bytes`, in hex.
    pub etag: String,
}

/// Decodes allowed at once: the CPU count (each may allocate up to the
/// decoder's bound, about 80 MB).
static DECODE_LIMIT: LazyLock<usize> = LazyLock::new(|| {
    std::thread::available_parallelism()
        .map(std::num::NonZeroUsize::get)
        .unwrap_or(2)
});
static DECODE_PERMITS: LazyLock<Arc<Semaphore>> =
    LazyLock::new(|| Arc::new(Semaphore::new(*DECODE_LIMIT)));
/// Decodes running now, and the most ever seen at once (for metrics and
/// the test that the bound holds).
static DECODING: AtomicUsize = AtomicUsize::new(0);
static DECODING_PEAK: AtomicUsize = AtomicUsize::new(0);

/// How many decodes may run at once in this process.
pub fn decode_limit() -> usize {
    *DECODE_LIMIT
}

/// The most decodes that ran at once in this process so far.
pub fn decode_peak() -> usize {
    DECODING_PEAK.load(Ordering::Acquire)
}

/// Waits for a turn to decode; hold the permit (move it into the blocking
/// task) for as long as [`reencode`] runs.
pub async fn decode_permit() -> Option<OwnedSemaphorePermit> {
    DECODE_PERMITS.clone().acquire_owned().await.ok()
}

/// Counts one running decode while alive.
struct Decoding;

impl Decoding {
    fn start() -> Self {
        let now = DECODING.fetch_add(1, Ordering::AcqRel) + 1;
        DECODING_PEAK.fetch_max(now, Ordering::AcqRel);
        metrics::gauge!("portcullis_avatar_decodes_in_progress").increment(1.0);
        Self
    }
}

impl Drop for Decoding {
    fn drop(&mut self) {
        DECODING.fetch_sub(1, Ordering::AcqRel);
        metrics::gauge!("portcullis_avatar_decodes_in_progress").decrement(1.0);
    }
}

/// Checks, decodes and re-encodes an upload declared as `declared`.
/// Callers hold a [`decode_permit`].
pub fn reencode(bytes: &[u8], declared: UploadType) -> Result<Encoded, MediaError> {
    if UploadType::sniff(bytes) != Some(declared) {
        return Err(MediaError::NotAnImage);
    }
    let _counted = Decoding::start();
    // zune-jpeg fills in a cut-off scan instead of failing: a JPEG must end
    // with its End Of Image marker.
    if declared == UploadType::Jpeg && !bytes.ends_with(&[0xFF, 0xD9]) {
        return Err(MediaError::NotAnImage);
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DIMENSION);
    limits.max_image_height = Some(MAX_DIMENSION);
    limits.max_alloc = Some(MAX_ALLOC);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), declared.format());
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(classify)?;
    let orientation = decoder.orientation().ok();
    let mut image = DynamicImage::from_decoder(decoder).map_err(classify)?;
    if let Some(o) = orientation {
        image.apply_orientation(o);
    }
    let square = image
        .resize_to_fill(AVATAR_SIDE, AVATAR_SIDE, FilterType::Lanczos3)
        .into_rgba8();
    let mut out = Cursor::new(Vec::new());
    square
        .write_to(&mut out, ImageFormat::Png)
        .map_err(|_| MediaError::Encode)?;
    let bytes = out.into_inner();
    let digest = Sha256::digest(&bytes);
    let etag = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    Ok(Encoded { bytes, etag })
}

fn classify(e: image::ImageError) -> MediaError {
    match e {
        image::ImageError::Limits(_) => MediaError::TooLarge,
        _ => MediaError::NotAnImage,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageEncoder, RgbImage};

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn png_round_trip_is_a_256_square_png() {
        let out = reencode(&png(300, 200), UploadType::Png).unwrap();
        let img = image::load_from_memory_with_format(&out.bytes, ImageFormat::Png).unwrap();
        assert_eq!((img.width(), img.height()), (256, 256));
        assert_eq!(out.etag.len(), 32);
    }

    #[test]
    fn declared_type_must_match() {
        assert_eq!(
            reencode(&png(10, 10), UploadType::Jpeg).unwrap_err(),
            MediaError::NotAnImage
        );
        assert_eq!(
            reencode(b"not an image at all", UploadType::Png).unwrap_err(),
            MediaError::NotAnImage
        );
    }

    #[test]
    fn truncated_png_is_refused() {
        let bytes = png(64, 64);
        let cut = &bytes[..bytes.len() / 2];
        assert_eq!(
            reencode(cut, UploadType::Png).unwrap_err(),
            MediaError::NotAnImage
        );
    }

    #[test]
    fn huge_dimensions_are_refused_before_decoding() {
        // A valid 1-row PNG header that claims 5000×1 pixels... and one that
        // claims 20000×20000 (a bomb): both refused by the limits.
        let mut out = Cursor::new(Vec::new());
        let row = vec![0u8; 5000 * 3];
        image::codecs::png::PngEncoder::new(&mut out)
            .write_image(&row, 5000, 1, image::ExtendedColorType::Rgb8)
            .unwrap();
        assert_eq!(
            reencode(&out.into_inner(), UploadType::Png).unwrap_err(),
            MediaError::TooLarge
        );
    }
}
