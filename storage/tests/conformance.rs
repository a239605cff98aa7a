//! The storage conformance suite: every case is written once against
//! `Arc<dyn Store>` and run against every backend, so `embedded` and `postgres`
//! are held to the same invariants (those listed in `converger_storage`'s crate
//! docs and the `Store` method docs).
//!
//! Test names read `<backend>::<case>`, e.g.
//! `embedded::seq_is_gap_free_under_concurrent_batches`. `postgres` and
//! `postgres_copy` (the same backend writing batches with binary COPY instead of
//! `unnest`) run only when `DATABASE_URL` is set, each case in a fresh schema;
//! otherwise they pass without running (the binary says so once, on the
//! terminal), unless `CONVERGER_REQUIRE_PG=1`.
//!
//! Adding a case: write `pub async fn name(store: Arc<dyn Store>)` in the module
//! it belongs to and list it in `conformance_suite!` below.

#[path = "conformance/activities.rs"]
mod activities;
#[path = "conformance/channels.rs"]
mod channels;
#[path = "conformance/claims.rs"]
mod claims;
mod common;
#[path = "conformance/conversations.rs"]
mod conversations;
#[path = "conformance/deliveries.rs"]
mod deliveries;
#[path = "conformance/durability.rs"]
mod durability;
#[path = "conformance/events.rs"]
mod events;
#[path = "conformance/harness.rs"]
mod harness;
#[path = "conformance/idempotency.rs"]
mod idempotency;
#[path = "conformance/lifecycle.rs"]
mod lifecycle;
#[path = "conformance/members.rs"]
mod members;
#[path = "conformance/pagination.rs"]
mod pagination;
#[path = "conformance/reactions.rs"]
mod reactions;
#[path = "conformance/replay.rs"]
mod replay;
#[path = "conformance/scoping.rs"]
mod scoping;
#[path = "conformance/signing_keys.rs"]
mod signing_keys;
#[path = "conformance/tenants.rs"]
mod tenants;

/// One `#[test]` per case in a module named after the backend.
macro_rules! backend_suite {
    ($backend:ident, $runner:ident;
     [$($module:ident :: $case:ident),* $(,)?];
     [$($rmodule:ident :: $rcase:ident),* $(,)?]) => {
        mod $backend {
            $(
                #[test]
                fn $case() {
                    crate::harness::$runner(stringify!($case), |store, _| crate::$module::$case(store));
                }
            )*
            $(
                #[test]
                fn $rcase() {
                    crate::harness::$runner(stringify!($rcase), crate::$rmodule::$rcase);
                }
            )*
        }
    };
}

/// Instantiates every case for every backend. `cases` take the store;
/// `reopen_cases` also get a [`harness::Reopen`] to restart it.
macro_rules! conformance_suite {
    (cases: [$($case:tt)*] reopen_cases: [$($rcase:tt)*]) => {
        backend_suite!(embedded, run_embedded; [$($case)*]; [$($rcase)*]);
        backend_suite!(postgres, run_postgres; [$($case)*]; [$($rcase)*]);
        backend_suite!(postgres_copy, run_postgres_copy; [$($case)*]; [$($rcase)*]);
    };
}

conformance_suite! {
cases: [
    tenants::tenant_create_get_list_update_round_trip,
    tenants::tenant_key_rotation_moves_lookup_to_the_new_hash,
    tenants::tenant_unknown_id_or_hash_is_not_found,
    tenants::tenant_limits_are_set_read_back_and_cleared,
    channels::channel_create_get_list_update_round_trip,
    channels::channel_list_filters_by_status,
    channels::channel_unknown_tenant_or_id_is_a_typed_error,
    conversations::conversation_create_get_list_close_round_trip,
    conversations::conversation_close_twice_is_idempotent_or_a_clear_answer,
    conversations::conversation_list_filters_by_channel_and_status,
    conversations::conversation_external_id_is_unique_per_channel,
    conversations::conversation_create_checks_the_channel,
    conversations::find_or_create_returns_the_existing_conversation,
    conversations::find_or_create_under_a_race_creates_once,
    conversations::find_or_create_without_external_id_is_invalid,
    activities::write_batch_round_trips_every_field,
    activities::write_batch_keeps_item_order_across_conversations,
    activities::write_batch_empty_batch_writes_nothing,
    activities::write_batch_failing_items_fail_alone,
    activities::write_batch_item_of_another_tenant_is_not_found,
    activities::get_activity_finds_one_by_id_within_its_tenant,
    activities::read_range_pages_by_after_seq_in_seq_order,
    activities::read_range_limit_is_clamped,
    activities::seq_is_gap_free_under_concurrent_batches,
    idempotency::replay_in_a_later_batch_returns_the_original,
    idempotency::replay_inside_one_batch_answers_the_first,
    idempotency::same_key_in_another_conversation_is_independent,
    idempotency::same_key_raced_from_concurrent_batches_writes_once,
    idempotency::replay_after_close_returns_the_original,
    deliveries::deliveries_are_written_with_their_activity,
    deliveries::unknown_deliver_to_channel_fails_the_whole_batch,
    deliveries::deliver_to_another_tenants_channel_is_refused_like_a_missing_one,
    deliveries::deliveries_list_filters_and_get,
    deliveries::merge_delivery_metadata_merges_top_level_keys,
    deliveries::deliver_to_naming_a_channel_twice_writes_one_row,
    deliveries::merge_delivery_metadata_rejects_a_non_object,
    deliveries::find_delivery_by_provider_id_finds_the_one_that_recorded_it,
    deliveries::find_delivery_by_provider_id_answers_none_for_an_unknown_id,
    deliveries::find_delivery_by_provider_id_ignores_other_channels,
    claims::claim_never_hands_a_row_to_two_claimers,
    claims::claim_takes_the_oldest_due_first_and_respects_limit,
    claims::expired_lease_makes_the_row_claimable_again,
    claims::complete_delivery_records_each_outcome,
    claims::a_stale_claim_cannot_record_an_outcome,
    claims::outcomes_recorded_together_are_each_answered_as_alone,
    claims::a_released_claim_costs_no_attempt_and_is_due_when_asked,
    claims::unfinished_attempts_count_and_end_in_failed,
    claims::retry_delivery_puts_a_failed_row_back_due_now,
    pagination::pagination_is_stable_for_every_list,
    pagination::rows_added_after_a_cursor_appear_on_later_pages,
    pagination::page_limit_is_clamped,
    scoping::tenant_scope_hides_other_tenants_objects,
    scoping::stats_count_every_entity,
    lifecycle::edits_replace_what_they_carry,
    lifecycle::only_the_author_edits_or_deletes_as_a_client,
    lifecycle::delete_erases_the_content_everywhere,
    lifecycle::delete_cancels_the_pending_delivery_of_the_message,
    lifecycle::a_target_outside_the_conversation_is_not_found,
    lifecycle::a_target_that_is_not_a_message_is_refused,
    lifecycle::a_deleted_target_is_refused,
    lifecycle::a_refused_item_fails_alone_in_its_batch,
    lifecycle::items_of_one_batch_see_each_other,
    lifecycle::racing_edit_and_delete_end_consistent,
    lifecycle::a_retried_delete_replays_its_key,
    reactions::a_repeated_reaction_replays_the_first,
    reactions::removing_a_reaction_not_there_is_refused,
    reactions::reaction_summaries_count_per_emoji_in_one_order,
    reactions::replies_form_one_level_threads,
    replay::replaying_the_log_gives_the_state_the_read_gives,
    members::members_join_and_leave_through_the_log,
    members::members_are_listed_in_pages,
    members::receipts_never_move_back,
    members::receipts_of_a_non_member_are_refused_before_their_seqs,
    members::last_seen_is_kept_per_user_and_moves_forward,
    members::member_conversations_lists_where_a_sender_is_a_member,
    members::members_only_is_stored_and_updated,
    signing_keys::signing_keys_round_trip_by_kid_and_by_tenant,
    signing_keys::signing_keys_are_deleted_only_by_their_tenant,
    signing_keys::signing_key_kids_are_unique_and_tenants_must_exist,
    events::event_endpoints_round_trip_within_their_tenant,
    events::events_are_written_with_the_changes_they_report,
    events::no_event_without_its_change,
    events::a_delivery_failed_for_good_writes_its_event,
    events::event_claims_lease_fence_and_end,
]
reopen_cases: [
    durability::writes_survive_reopening_the_store,
]
}
