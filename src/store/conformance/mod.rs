//! The store conformance suite: the behaviour every backend must show, one
//! check per function, one file per trait. Compiled for tests only.
//!
//! A backend's tests expand [`conformance_tests!`] once with a function
//! that runs a check on a fresh, empty store:
//!
//! ```ignore
//! async fn with_store<F, Fut>(what: &'static str, check: F)
//! where
//!     F: FnOnce(DynStore) -> Fut,
//!     Fut: Future<Output = ()> + Send + 'static;
//!
//! crate::store::conformance::conformance_tests!(with_store);
//! ```
//!
//! which gives one `#[tokio::test]` per check, named
//! `conformance::<trait file>::<check>`.

pub(crate) mod anonymous;
pub(crate) mod avatars;
pub(crate) mod credentials;
pub(crate) mod dpop;
pub(crate) mod email;
pub(crate) mod mfa;
pub(crate) mod once;
pub(crate) mod security;
pub(crate) mod sessions;
pub(crate) mod throttles;
pub(crate) mod upkeep;
pub(crate) mod users;
// Passkeys.
pub(crate) mod ceremonies;
pub(crate) mod oauth;
pub(crate) mod passkeys;
// Federated sign-in.
pub(crate) mod identities;

use crate::domain::UserId;

use super::{CredentialRecord, PasskeyRecord, SessionRecord, UserRecord};

/// A user id from test text (literal ids of accounts that may not exist).
pub(crate) fn uid(id: &str) -> UserId {
    UserId::from(id)
}

/// A profile for tests, with a fresh id.
pub(crate) fn user(email: &str) -> UserRecord {
    UserRecord {
        id: UserId::mint(),
        email: email.to_string(),
        email_verified: false,
        display_name: Some("Test".into()),
        roles: vec!["user".into()],
        disabled: false,
        created_at: 1_700_000_000,
        updated_at: 1_700_000_000,
        ..UserRecord::default()
    }
}

/// Credentials for tests.
pub(crate) fn credentials() -> CredentialRecord {
    CredentialRecord {
        password_hash: "$2b$04$notarealhashnotarealhashnotarealhashnotarealhashnot".into(),
        legacy_bcrypt: false,
        ..CredentialRecord::default()
    }
}

/// A passkey for tests, with a fresh id; `tag` marks its credential id.
pub(crate) fn passkey(tag: &str) -> PasskeyRecord {
    PasskeyRecord {
        id: uuid::Uuid::now_v7().to_string(),
        credential_id: format!("cred-{tag}-{}", uuid::Uuid::new_v4().simple()),
        name: format!("Key {tag}"),
        passkey: "{\"cred\":\"opaque\"}".into(),
        counter: 0,
        backup_eligible: true,
        backup_state: false,
        created_at: 1_800_000_000,
        last_used_at: None,
    }
}

/// A session record for tests, with fresh ids, expiring at `now + 3600`.
pub(crate) fn session(user_id: &str, now: i64) -> SessionRecord {
    SessionRecord {
        id: uuid::Uuid::now_v7().to_string(),
        user_id: UserId::from(user_id),
        current_jti: uuid::Uuid::new_v4().to_string(),
        previous_jti: None,
        rotated_at: now,
        generation: 0,
        amr: vec!["pwd".into()],
        created_at: now,
        last_used_at: now,
        expires_at: now + 3600,
        revoked_at: None,
        user_agent: Some("test".into()),
        ip: Some("127.0.0.1".into()),
        proven_at: Some(now),
        idp: None,
        client_id: None,
        audience: None,
        scope: None,
        dpop_jkt: None,
    }
}

/// One `#[tokio::test]` per check, each on a fresh store from `$with` (see
/// the module docs). The list below is the whole suite: a new check goes
/// here and in its trait's file.
macro_rules! conformance_tests {
    ($with:ident) => {
        $crate::store::conformance::conformance_tests!(@expand $with;
            users {
                create_and_read,
                duplicate_email_conflicts,
                concurrent_registrations,
                update_profile,
                profile_fields_set_and_clear,
                list_by_prefix_and_cursor,
                admin_update,
                delete_erases_everything,
                create_users_skips_taken,
                change_email_moves_the_unique_key,
            }
            avatars {
                put_read_replace_delete,
                no_avatar_without_account,
            }
            credentials {
                round_trip,
                set_password_hash,
                profile_update_keeps_credentials,
                set_password_hash_keeps_profile,
                user_reads_carry_no_secrets,
                set_password_hash_clears_legacy,
            }
            mfa {
                pending_then_active,
                disable_forgets_secrets_and_codes,
                replaced_codes_kill_the_old_set,
                recovery_code_works_once,
                racing_uses_of_one_recovery_code,
                secrets_stay_out_of_profile_reads,
                totp_steps_and_mfa_tokens_claim_once,
            }
            sessions {
                create_and_read,
                rotation_grace_then_reuse,
                rotation_without_grace,
                rotation_of_unknown_or_expired,
                concurrent_rotation,
                revoke_one,
                revoke_all_but_one,
                expired_not_listed,
                live_check_follows_every_session_write,
                proof_time_recorded_and_kept,
            }
            once {
                claim_once,
                claim_again_after_expiry,
                concurrent_claims,
                concurrent_code_tries,
            }
            throttles {
                failures_within_window,
                clear_failures,
                failures_capped,
                reserve_up_to_the_limit,
                clear_keeps_places_in_flight,
                unsettled_places_free_themselves,
                concurrent_reservations,
                concurrent_checks_settle,
                concurrent_successes_take_turns,
                concurrent_failures_all_count,
            }
            upkeep {
                ping,
                purge_expired,
            }
            security {
                audit_pages_newest_first,
                audit_filters,
                audit_append_is_idempotent,
                audit_retention,
                audit_counts_add_up_in_one_event,
                audit_purge_covers_more_than_a_chunk,
                webhook_queue,
                devices_remembered_and_bounded,
                forget_a_device,
            }
            email {
                ticket_round_trip,
                newer_ticket_replaces_older,
                expired_ticket_is_not_returned,
                enqueue_is_idempotent,
                only_due_mail_is_claimed,
                sent_mail_is_never_claimed_again,
                failed_mail_is_retried_when_due,
                expired_lease_is_claimed_again,
                concurrent_claims_get_one_each,
                queue_stats,
            }
            passkeys {
                add_and_count,
                add_duplicate_id_conflicts,
                update_after_use,
                remove_one,
                last_passkey_of_passwordless_account_stays,
                profile_reads_carry_no_passkeys,
                add_is_capped,
                claim_forgets_every_other_credential,
            }
            ceremonies {
                taken_once,
                expired_is_not_taken,
                concurrent_takes,
            }
            anonymous {
                guest_round_trip_and_touch,
                stale_guests_listed_and_deleted,
                upgrade_in_place,
                racing_upgrades_to_one_address,
                sign_in_tickets_are_their_own_kind,
            }
            identities {
                link_read_and_list,
                one_account_per_identity,
                racing_links_of_one_identity,
                last_way_in_stays,
                racing_unlinks_keep_one,
                deleting_the_account_unlinks,
                an_identity_lets_the_last_passkey_go,
            }
            oauth {
                clients_round_trip,
                client_id_conflicts,
                consents_per_user_and_client,
            }
            dpop {
                bound_key_kept_and_bound_once,
                racing_binds_one_key_wins,
                proof_claimed_once,
            }
        );
    };
    (@expand $with:ident; $($module:ident { $($check:ident),* $(,)? })*) => {
        mod conformance {
            #[allow(unused_imports)]
            use super::*;
            $(
                mod $module {
                    #[allow(unused_imports)]
                    use super::*;
                    $(
                        #[tokio::test]
                        async fn $check() {
                            $with(
                                concat!("conformance::", stringify!($module), "::", stringify!($check)),
                                $crate::store::conformance::$module::$check,
                            )
                            .await;
                        }
                    )*
                }
            )*
        }
    };
}
pub(crate) use conformance_tests;
