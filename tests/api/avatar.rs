//! Avatars: real PNG, JPEG and WebP uploads (raw and multipart), what is
//! served back (a fresh 256×256 PNG, no uploaded metadata), refusals, and
//! caching.

use std::io::Cursor;

use image::{ImageFormat, RgbImage};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

/// A marker no re-encoded image can contain by chance.
const SECRET: &[u8] = b"GPS-SECRET-48.8584N-2.2945E";

fn image_bytes(w: u32, h: u32, format: ImageFormat) -> Vec<u8> {
    let img = RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7) as u8, (y * 3) as u8, 99]));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

pub fn png_bytes(w: u32, h: u32) -> Vec<u8> {
    image_bytes(w, h, ImageFormat::Png)
}

/// A JPEG with an EXIF segment (APP1) carrying [`SECRET`].
fn jpeg_with_exif() -> Vec<u8> {
    let jpeg = image_bytes(120, 80, ImageFormat::Jpeg);
    let mut exif = b"Exif\0\0MM\0*\0\0\0\x08".to_vec();
    exif.extend_from_slice(SECRET);
    let len = u16::try_from(exif.len() + 2).unwrap().to_be_bytes();
    let mut out = jpeg[..2].to_vec(); // SOI
    out.extend_from_slice(&[0xFF, 0xE1, len[0], len[1]]);
    out.extend(exif);
    out.extend_from_slice(&jpeg[2..]);
    assert!(out.windows(SECRET.len()).any(|w| w == SECRET));
    out
}

/// A PNG with a `tEXt` chunk carrying [`SECRET`] before `IEND`.
fn png_with_text() -> Vec<u8> {
    let png = png_bytes(50, 50);
    let iend = png.len() - 12;
    let mut data = b"Comment\0".to_vec();
    data.extend_from_slice(SECRET);
    let mut chunk = u32::try_from(data.len()).unwrap().to_be_bytes().to_vec();
    let mut typed = b"tEXt".to_vec();
    typed.extend(&data);
    chunk.extend(&typed);
    chunk.extend(crc32(&typed).to_be_bytes());
    let mut out = png[..iend].to_vec();
    out.extend(chunk);
    out.extend_from_slice(&png[iend..]);
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for b in bytes {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Checks a served avatar: a 256×256 PNG without the marker.
async fn assert_served_clean(app: &TestApp, url: &str) -> String {
    let r = app.get_avatar(url, None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert!(
        r.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'));
    let bytes = r.bytes().await.unwrap();
    assert!(
        !bytes.windows(SECRET.len()).any(|w| w == SECRET),
        "metadata served back"
    );
    assert!(
        !bytes
            .windows(4)
            .any(|w| w == b"Exif" || w == b"tEXt" || w == b"eXIf")
    );
    let img = image::load_from_memory_with_format(&bytes, ImageFormat::Png).unwrap();
    assert_eq!((img.width(), img.height()), (256, 256));
    etag
}

#[tokio::test]
async fn png_jpeg_and_webp_round_trip_as_clean_256_pngs() {
    let app = spawn_app().await;
    let (_, tokens) = app.signed_in_user().await;
    let at = token(&tokens, "access_token");
    let id = tokens["user"]["id"].as_str().unwrap();
    let uploads = [
        ("image/png", png_with_text()),
        ("image/jpeg", jpeg_with_exif()),
        ("image/webp", image_bytes(300, 500, ImageFormat::WebP)),
    ];
    let mut etags = Vec::new();
    for (ty, bytes) in uploads {
        let r = app.put_avatar(&at, ty, bytes.clone()).await;
        assert_eq!(r.status(), StatusCode::OK, "{ty}");
        let u: Value = r.json().await.unwrap();
        let url = u["avatar_url"].as_str().unwrap().to_string();
        assert_eq!(
            url,
            format!(
                "{}/v1/users/{id}/avatar",
                app.addr.replace("127.0.0.1", "localhost")
            )
        );
        let served_url = app.url(&format!("/v1/users/{id}/avatar"));
        etags.push(assert_served_clean(&app, &served_url).await);
        let me: Value = app.get_authed("/v1/me", &at).await.json().await.unwrap();
        assert_eq!(me["avatar_url"], u["avatar_url"]);
    }
    etags.dedup();
    assert_eq!(etags.len(), 3, "each upload has its own ETag");

    // Multipart, field `file`.
    let r = app
        .put_avatar_multipart(&at, "image/jpeg", jpeg_with_exif())
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_served_clean(&app, &app.url(&format!("/v1/users/{id}/avatar"))).await;

    // Delete: 204, then 404 and no avatar_url.
    let r = app.delete_authed("/v1/me/avatar", &at).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app
        .get_avatar(&app.url(&format!("/v1/users/{id}/avatar")), None)
        .await;
    assert_problem(r, StatusCode::NOT_FOUND, "not-found").await;
    let me: Value = app.get_authed("/v1/me", &at).await.json().await.unwrap();
    assert!(me["avatar_url"].is_null());
    assert_eq!(
        app.delete_authed("/v1/me/avatar", &at).await.status(),
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn bad_uploads_are_refused_and_change_nothing() {
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_AVATAR_MAX_BYTES".into(), "200000".into());
    })
    .await;
    let (_, tokens) = app.signed_in_user().await;
    let at = token(&tokens, "access_token");
    let id = tokens["user"]["id"].as_str().unwrap();
    let url = app.url(&format!("/v1/users/{id}/avatar"));
    assert_eq!(
        app.put_avatar(&at, "image/png", png_bytes(40, 40))
            .await
            .status(),
        StatusCode::OK
    );
    let etag = assert_served_clean(&app, &url).await;

    let png = png_bytes(64, 64);
    let jpeg = image_bytes(64, 64, ImageFormat::Jpeg);
    let refusals: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "image/jpeg",
            png.clone(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        ),
        (
            "image/png",
            png[..png.len() / 2].to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        ),
        (
            "image/jpeg",
            jpeg[..jpeg.len() - 40].to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        ),
        (
            "image/png",
            b"<svg xmlns='http://www.w3.org/2000/svg'/>".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        ),
        (
            "image/gif",
            b"GIF89a".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        ),
        (
            "image/png",
            png_bytes(4097, 8),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
        ),
        (
            "image/png",
            vec![0u8; 200_001],
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
        ),
    ];
    for (ty, bytes, status, slug) in refusals {
        let r = app.put_avatar(&at, ty, bytes).await;
        assert_problem(r, status, slug).await;
    }
    // Multipart with a part of the wrong type.
    let r = app
        .put_avatar_multipart(&at, "image/webp", png.clone())
        .await;
    assert_problem(
        r,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
    )
    .await;
    // Without a token.
    let r = app
        .client
        .put(app.url("/v1/me/avatar"))
        .header("content-type", "image/png")
        .body(png)
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::UNAUTHORIZED, "authentication-required").await;
    assert_eq!(
        assert_served_clean(&app, &url).await,
        etag,
        "the avatar is unchanged"
    );
}

#[tokio::test]
async fn a_decompression_bomb_is_refused_without_decoding_it() {
    let app = spawn_app().await;
    let (_, tokens) = app.signed_in_user().await;
    let at = token(&tokens, "access_token");
    // 20000×20000 pixels of one colour: a small file that would need 1.2 GB.
    let mut out = Cursor::new(Vec::new());
    let row = vec![0u8; 20_000];
    {
        use image::ImageEncoder;
        let rows: Vec<u8> = row.iter().copied().cycle().take(20_000 * 200).collect();
        // Encode 200 rows; claim 20000 in the header by encoding a tall image
        // of one channel is too slow, so patch the IHDR height instead.
        image::codecs::png::PngEncoder::new(&mut out)
            .write_image(&rows, 20_000, 200, image::ExtendedColorType::L8)
            .unwrap();
    }
    let mut png = out.into_inner();
    // IHDR: bytes 16..20 width, 20..24 height; then its CRC at 29..33.
    png[20..24].copy_from_slice(&20_000u32.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    assert!(png.len() < 200_000);
    let r = app.put_avatar(&at, "image/png", png).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
}

#[tokio::test]
async fn etag_revalidation_answers_304() {
    let app = spawn_app().await;
    let (_, tokens) = app.signed_in_user().await;
    let at = token(&tokens, "access_token");
    let id = tokens["user"]["id"].as_str().unwrap();
    let url = app.url(&format!("/v1/users/{id}/avatar"));
    assert_problem(
        app.get_avatar(&url, None).await,
        StatusCode::NOT_FOUND,
        "not-found",
    )
    .await;
    app.put_avatar(&at, "image/png", png_bytes(10, 10)).await;
    let etag = assert_served_clean(&app, &url).await;
    for tag in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
        "*".into(),
    ] {
        let r = app.get_avatar(&url, Some(&tag)).await;
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED, "{tag}");
        assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
        assert!(r.bytes().await.unwrap().is_empty());
    }
    let r = app.get_avatar(&url, Some("\"stale\"")).await;
    assert_eq!(r.status(), StatusCode::OK);
    // A new upload changes the ETag: the old one no longer matches.
    app.put_avatar(&at, "image/png", png_bytes(11, 10)).await;
    assert_eq!(
        app.get_avatar(&url, Some(&etag)).await.status(),
        StatusCode::OK
    );
    let r = app
        .get_avatar(&app.url("/v1/users/no-such-user/avatar"), None)
        .await;
    assert_problem(r, StatusCode::NOT_FOUND, "not-found").await;
}
