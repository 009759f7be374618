//! The scenarios, each driven by real kubectl against the real kube-apiserver.

pub mod audit;
pub mod callers;
pub mod deletion;
pub mod gitops;
pub mod grants;
pub mod helm;
pub mod install;
pub mod modes;
pub mod outage;
pub mod people;
pub mod policies;
pub mod progressive;

use crate::{Env, Scenario};

macro_rules! scenarios {
    ($($module:ident::$name:ident),* $(,)?) => {
        vec![$((concat!(stringify!($module), "::", stringify!($name)), $module::$name as fn(&Env))),*]
    };
}

/// Every scenario, in the order they run.
pub fn all() -> Vec<Scenario> {
    scenarios![
        gitops::argocd_and_flux_create_apply_and_prune_without_a_webhook_call,
        people::a_persons_kubectl_edit_is_refused_with_the_design_message,
        people::a_persons_patch_label_annotate_delete_and_forced_apply_are_refused,
        people::a_persons_scale_is_refused_and_the_hpa_may_scale,
        people::a_server_dry_run_is_answered_truthfully_and_journaled_as_dry_run,
        modes::warn_mode_lets_the_edit_through_and_kubectl_prints_the_warning,
        modes::repair_mode_restores_protected_fields_and_keeps_exempt_paths,
        modes::break_glass_members_get_through_with_a_warning_and_a_record,
        deletion::argocd_foreground_background_and_orphan_deletions_finish,
        deletion::the_garbage_collector_removes_objects_whose_owner_went,
        deletion::deleting_a_namespace_with_protected_objects_finishes,
        policies::two_policies_over_one_object_give_one_journal_line_each_and_one_event,
        policies::a_refusal_becomes_a_kubernetes_event_with_a_kubeconfig,
        policies::a_policy_reload_while_the_apiserver_sends_requests_loses_no_answer,
        policies::deleting_a_tracked_namespace_is_refused_for_a_person_and_allowed_for_argocd,
        progressive::argo_rollouts_shifts_weights_and_manages_header_routes_but_not_hosts,
        progressive::flagger_writes_what_its_canary_owns_and_a_person_may_not,
        outage::with_driftgate_down_people_are_refused_and_gitops_break_glass_and_kube_system_are_not,
        outage::the_tamper_guard_keeps_people_even_admins_from_removing_driftgate,
        grants::a_grant_lets_exactly_its_subject_change_exactly_its_scope_until_it_expires,
        grants::grants_without_a_reason_beyond_the_cap_or_for_their_granter_are_refused,
        install::the_shipped_statefulset_keeps_each_journal_on_a_claim,
        callers::with_a_client_ca_the_apiserver_is_authenticated_and_a_direct_post_is_refused,
        callers::a_flood_of_forged_reviews_is_summarised_and_the_real_refusals_survive,
        audit::audit_finds_what_people_changed_while_driftgate_was_stopped_and_reports_it,
        helm::the_chart_installs_upgrades_and_uninstalls_with_no_gap_in_refusals,
    ]
}
