//! The association files native apps need (Apple's app-site association,
//! Android's asset links), built from the settings.

use super::AssociationFiles;
use crate::service::Core;

impl Core {
    /// The body of an association file, `None` when not configured (404).
    pub fn association_file(&self, which: AssociationFiles) -> Option<serde_json::Value> {
        let p = &self.settings.passkeys;
        match which {
            AssociationFiles::Apple if !p.apple_app_ids.is_empty() => Some(serde_json::json!({
                "webcredentials": { "apps": p.apple_app_ids },
                "applinks": {
                    "details": [{
                        "appIDs": p.apple_app_ids,
                        "components": [
                            { "/": "/reset-password*" },
                            { "/": "/verify-email*" },
                        ],
                    }],
                },
            })),
            AssociationFiles::Android if !p.android_apps.is_empty() => {
                // One statement per package, all its fingerprints together.
                let mut packages: Vec<(&str, Vec<&str>)> = Vec::new();
                for app in &p.android_apps {
                    match packages.iter_mut().find(|(name, _)| *name == app.package) {
                        Some((_, fps)) => fps.push(&app.sha256_fingerprint),
                        None => packages.push((&app.package, vec![&app.sha256_fingerprint])),
                    }
                }
                Some(serde_json::Value::Array(
                    packages
                        .into_iter()
                        .map(|(package, fingerprints)| {
                            serde_json::json!({
                                "relation": [
                                    "delegate_permission/common.handle_all_urls",
                                    "delegate_permission/common.get_login_creds",
                                ],
                                "target": {
                                    "namespace": "android_app",
                                    "package_name": package,
                                    "sha256_cert_fingerprints": fingerprints,
                                },
                            })
                        })
                        .collect(),
                ))
            }
            _ => None,
        }
    }
}
