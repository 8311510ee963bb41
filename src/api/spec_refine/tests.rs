//! What the refinement adds to the generated spec.

use super::*;

fn spec() -> Value {
    let mut v: Value = serde_json::from_str(&crate::api::service().spec()).unwrap_or_default();
    refine(&mut v);
    v
}

#[test]
fn bodies_refuse_unknown_fields_and_have_examples() {
    let v = spec();
    let login = &v["components"]["schemas"]["LoginRequest"];
    assert_eq!(login["additionalProperties"], json!(false));
    assert_eq!(login["properties"]["captcha"]["nullable"], json!(true));
    let ex = &v["paths"]["/v1/sessions"]["post"]["requestBody"]["content"]["application/json; charset=utf-8"]
        ["example"];
    assert_eq!(ex["email"], json!("ada@example.com"));
    for (path, ops) in v["paths"].as_object().into_iter().flatten() {
        for (method, op) in ops.as_object().into_iter().flatten() {
            for (media, m) in op
                .pointer("/requestBody/content")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                if m.pointer("/schema/$ref").is_some() {
                    assert!(m.get("example").is_some(), "{method} {path} {media}");
                }
            }
        }
    }
}

#[test]
fn profile_patch_lists_no_operator_fields_and_limits_have_bounds() {
    let v = spec();
    let props = &v["components"]["schemas"]["UpdateProfileRequest"]["properties"];
    for f in OPERATOR_FIELDS {
        assert!(props.get(*f).is_none(), "{f}");
    }
    assert!(props.get("display_name").is_some());
    let params = v["paths"]["/v1/me/activity"]["get"]["parameters"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let limit = params
        .iter()
        .find(|p| p["name"] == "limit")
        .map(|p| p["schema"].clone())
        .unwrap_or_default();
    assert_eq!(limit["minimum"], json!(1));
    assert_eq!(limit["maximum"], json!(100));
}

#[test]
fn problem_responses_name_their_slugs() {
    let v = spec();
    let login = &v["paths"]["/v1/sessions"]["post"]["responses"];
    let d401 = login["401"]["description"].as_str().unwrap_or_default();
    assert!(d401.contains("`invalid-credentials`"), "{d401}");
    let d400 = login["400"]["description"].as_str().unwrap_or_default();
    assert!(d400.contains("`captcha-required`") && d400.contains("`malformed-request`"));
    let me = v["paths"]["/v1/me"]["get"]["responses"]["401"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(me.contains("`token-invalid`") && !me.contains("invalid-credentials"));
}
