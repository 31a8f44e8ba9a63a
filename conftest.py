"""Root conftest: our own tests drive pytest itself through pytester, and long tests wait for --slow.

Plain ``pytest`` (no arguments) is the quick check, under five minutes on two cores: it runs on
every core (pytest-xdist) and leaves out the tests marked ``slow``, the long end-to-end runs
listed in :data:`LONG_RUNS` and the sandboxed variants of the attack tests. ``--slow`` runs everything; ``.ci/run`` does.
"""

from __future__ import annotations

import os
import re

import pytest

pytest_plugins = ["pytester"]

# test modules import litellm at collection; without this it fetches its price list from the
# network first (three tries, seconds each, on a machine that has none), as the plugin never lets it
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

#: End-to-end tests of a few seconds or more (whole loops, interrupted and resumed runs, several
#: workers, the model agent's conversations, the examples' plain runs), measured with
#: ``--durations``: each file keeps a quicker test in the default run, and all of them run with --slow.
LONG_RUNS = (
    "tests/test_command_agent.py::test_ctrl_c_while_the_command_runs_kills_it",
    "tests/test_example_clinical.py::test_a_class_weight_that_starves_the_malignant_class_breaks_the_gate",
    "tests/test_example_prompt.py::test_plain_pytest_passes_and_shows_the_score",
    "tests/test_example_prompt.py::test_pytest_uses_the_model_that_prompt_api_base_names",
    "tests/test_example_prompt.py::test_the_evaluator_calls_the_model_and_each_named_field_counts",
    "tests/test_example_sqlite.py::test_plain_pytest_shows_the_score",
    "tests/test_example_tinygpt.py::test_a_diverging_run_fails_fast_and_clearly",
    "tests/test_example_tinygpt.py::test_plain_pytest_trains_and_shows_the_score",
    "tests/test_finalize.py::test_a_review_branch_with_someone_elses_commits_is_left_alone",
    "tests/test_finalize.py::test_a_rootdir_below_the_repository_root",
    "tests/test_finalize.py::test_changes_made_on_the_run_branch_by_hand_get_a_commit_of_their_own",
    "tests/test_finalize.py::test_finalizing_again_moves_the_branch_without_rewriting_it",
    "tests/test_finalize.py::test_the_review_branch_has_one_commit_per_kept_trial",
    "tests/test_finalize.py::test_unknown_runs_and_runs_in_use_are_refused",
    "tests/test_llm_agent.py::test_a_context_window_error_shrinks_the_history_and_tries_once_more",
    "tests/test_llm_agent.py::test_a_long_history_is_summarised_to_fit_the_prompt_budget",
    "tests/test_llm_agent.py::test_answers_without_an_applicable_edit_are_invalid_and_the_loop_goes_on",
    "tests/test_llm_agent.py::test_later_prompts_carry_the_history_and_the_last_failure",
    "tests/test_llm_agent.py::test_transport_failures_are_retried_and_never_count_as_trials",
    "tests/test_loop.py::test_a_project_in_a_subfolder_of_the_repository",
    "tests/test_loop.py::test_carried_data_reaches_trials_and_leftovers_do_not_reach_the_next_trial",
    "tests/test_loop.py::test_interrupting_a_trial_kills_it_and_keeps_the_log",
    "tests/test_loop.py::test_mutate_finds_an_improvement_within_twelve_trials",
    "tests/test_loop.py::test_trials_appear_in_junitxml",
    "tests/test_loop.py::test_uncommitted_work_elsewhere_is_left_alone",
    "tests/test_reports.py::test_a_trials_junit_time_is_its_real_time",
    "tests/test_reports.py::test_finalize_makes_a_review_branch_and_a_summary",
    "tests/test_reports.py::test_the_live_line_says_how_far_the_run_is",
    "tests/test_reports.py::test_the_report_reprints_a_run_from_its_log_and_runs_nothing",
    "tests/test_reports.py::test_tokens_and_cost_reach_junit_when_the_model_reports_them",
    "tests/test_resume.py::test_a_branch_changed_outside_the_loop_gets_a_new_baseline",
    "tests/test_resume.py::test_a_half_written_row_and_a_branch_behind_the_log_are_repaired",
    "tests/test_resume.py::test_a_second_loop_on_the_same_tag_is_refused",
    "tests/test_resume.py::test_interrupted_while_a_trial_is_judged",
    "tests/test_resume.py::test_interrupted_while_a_trial_runs_then_resumed",
    "tests/test_resume.py::test_interrupted_while_the_agent_proposes_then_resumed",
    "tests/test_resume.py::test_running_again_with_the_default_tag_continues_todays_run",
    "tests/test_trial_start.py::test_a_hang_late_in_the_suite_is_a_timeout_that_says_where_it_hung",
    "tests/test_trial_start.py::test_a_suite_that_turns_warnings_into_errors_runs_its_baseline_and_trials",
    "tests/test_trial_start.py::test_children_of_a_trial_behave_as_under_plain_pytest",
    "tests/test_workers.py::test_a_candidate_that_beat_a_moved_best_is_reapplied_and_run_again",
    "tests/test_workers.py::test_a_candidate_that_conflicts_with_the_moved_best_is_discarded",
    "tests/test_workers.py::test_a_trial_starts_without_plugins_it_does_not_need",
    "tests/test_workers.py::test_ctrl_c_logs_every_trial_in_flight_and_the_run_resumes",
    "tests/test_workers.py::test_each_worker_gets_its_own_device",
    "tests/test_loop.py::test_hung_trials_are_killed_with_their_children",
    "tests/test_workers.py::test_two_workers_keep_what_one_worker_keeps",
    "tests/test_attacks_memory.py::test_a_fork_bomb",
    "tests/test_llm_agent.py::test_each_answer_format_is_applied_and_kept",
    "tests/test_llm_agent.py::test_an_authentication_failure_stops_the_run_cleanly",
    "tests/test_llm_agent.py::test_tokens_and_cost_are_logged_and_max_cost_ends_the_run",
    "tests/test_example_buildtime.py::test_plain_pytest_builds_and_shows_the_build_time",
    "tests/test_containment.py::test_reading_secrets",
    "tests/test_resume.py::test_a_driver_killed_outright_loses_only_the_trial_in_flight",
    "tests/test_agent_tools.py::test_malformed_tool_calls_get_an_error_result_and_the_conversation_goes_on",
    "tests/test_agent_tools.py::test_running_out_of_turns_asks_for_the_answer_without_tools_then_the_trial_is_invalid",
    "tests/test_agent_tools.py::test_the_token_cap_makes_the_next_request_the_last",
    "tests/test_agent_tools.py::test_the_time_cap_makes_the_next_request_the_last",
    "tests/test_agent_tools.py::test_a_model_without_tool_support_gets_the_one_shot_prompt",
    "tests/test_agent_tools.py::test_a_server_rejecting_tools_gets_the_one_shot_prompt_for_the_rest_of_the_run",
    "tests/test_agent_tools.py::test_a_model_that_repeats_a_call_gets_the_results_as_text_and_answers",
    "tests/test_agent_tools.py::test_a_last_request_answered_with_a_call_written_as_text_is_invalid",
    "tests/test_prompt_defaults.py::test_a_deterministic_evaluator_and_a_baseline_timed_budget_are_said_plainly",
    # 3.5 s or more in a CI run (-n 2 --slow --durations); each file keeps its quickest test in the default run
    "tests/test_agent_seam.py::test_a_plugin_agent_that_edits_its_workdir",
    "tests/test_agent_seam.py::test_an_agent_that_crashes_stops_the_loop_with_a_clear_message",
    "tests/test_agent_seam.py::test_pythonpath_pointing_at_the_checkout_is_redirected_to_the_worktree",
    "tests/test_agent_tools.py::test_a_tool_named_without_its_arguments_is_asked_for_by_name",
    "tests/test_agent_tools.py::test_an_empty_reply_is_asked_again_with_tools_off",
    "tests/test_agent_tools.py::test_paths_outside_the_surface_and_holdout_files_are_refused_by_rule",
    "tests/test_agent_tools.py::test_the_model_reads_a_range_then_an_edit_applies_and_is_kept",
    "tests/test_attacks_git.py::test_commands_planted_in_your_repository_config",
    "tests/test_attacks_git.py::test_the_worktree_metadata_rewritten",
    "tests/test_attacks_memory.py::test_a_setsid_child_holding_more_than_the_cap",
    "tests/test_attacks_memory.py::test_candidate_code_runs_inside_its_cgroup",
    "tests/test_attacks_memory.py::test_each_trial_has_its_own_temporary_folder",
    "tests/test_attacks_memory.py::test_files_in_tmpfs_count_against_the_cap_and_go_with_the_trial",
    "tests/test_attacks_reach.py::test_a_better_candidate_that_reaches_is_parked_for_review",
    "tests/test_attacks_rescore.py::test_a_best_that_hangs_outside_the_loop_is_reported",
    "tests/test_attacks_rescore.py::test_a_best_that_plants_a_hook_outside_the_loop_is_caught_and_undone",
    "tests/test_attacks_rescore.py::test_a_candidate_that_cheats_only_under_the_loop_is_kept_and_does_not_reproduce",
    "tests/test_attacks_rescore.py::test_an_honest_best_reproduces",
    "tests/test_attacks_rescore.py::test_nothing_kept_nothing_rescored",
    "tests/test_attacks_rescore.py::test_the_rescore_carries_no_marker_of_the_loop_nor_a_secret_and_has_the_carried_data",
    "tests/test_attacks_rescore.py::test_without_the_sandbox_a_candidate_can_still_find_the_driver",
    "tests/test_attacks_run_state.py::test_deleting_moving_and_adding_the_runs_refs",
    "tests/test_attacks_run_state.py::test_forging_and_rewriting_audit_records",
    "tests/test_attacks_run_state.py::test_moving_the_branch_to_a_commit_that_replaces_the_objective",
    "tests/test_attacks_run_state.py::test_rewriting_an_earlier_trials_files",
    "tests/test_attacks_text.py::test_control_characters_reach_neither_the_terminal_nor_the_records",
    "tests/test_carry.py::test_an_ignored_version_file_gets_the_line_that_carries_it_and_then_runs",
    "tests/test_carry.py::test_the_setup_command_builds_in_each_worktree_and_builds_again_what_a_trial_removed",
    "tests/test_command_agent.py::test_a_command_past_its_timeout_is_killed_with_its_children",
    "tests/test_containment.py::test_deleting_the_model",
    "tests/test_containment.py::test_rewriting_run_json_at_run_time",
    "tests/test_context_window.py::test_a_window_in_the_models_list_sets_the_budget_and_every_prompt_fits_it",
    "tests/test_context_window.py::test_llama_cpps_server_reports_its_window_at_props",
    "tests/test_context_window.py::test_the_users_budget_is_kept_and_a_server_that_reports_no_window_keeps_the_default",
    "tests/test_decisions.py::test_a_noisy_evaluator_keeps_only_what_beats_the_noise",
    "tests/test_decisions.py::test_a_scripted_noisy_run_judges_each_candidate_on_the_noise_known_before_it",
    "tests/test_decisions.py::test_min_delta_asks_for_more_than_any_gain",
    "tests/test_decisions.py::test_the_loop_updates_a_tracked_fitness_json_in_kept_commits",
    "tests/test_examples.py::test_the_readme_command_runs_the_loop_on_a_temporary_copy",
    "tests/test_finalize.py::test_a_log_that_disagrees_with_the_branch_is_refused",
    "tests/test_finalize.py::test_a_run_that_kept_nothing_has_nothing_to_review",
    "tests/test_finalize.py::test_the_summary_shows_the_holdout_and_the_parked_trials",
    "tests/test_isolate.py::test_in_the_loop_a_forger_is_scored_on_what_it_returned",
    "tests/test_llm_endpoint.py::test_a_host_that_does_not_resolve_is_named",
    "tests/test_llm_endpoint.py::test_a_listed_model_costs_no_completion_before_the_baseline",
    "tests/test_llm_endpoint.py::test_a_model_the_server_does_not_serve_stops_before_the_baseline",
    "tests/test_llm_endpoint.py::test_a_refused_connection_stops_before_the_baseline_with_one_clear_line",
    "tests/test_llm_endpoint.py::test_a_server_that_lists_another_name_but_answers_runs",
    "tests/test_llm_endpoint.py::test_an_endpoint_that_goes_away_during_the_run_is_given_up_on_in_seconds",
    "tests/test_loop.py::test_crashes_are_logged_with_a_reason_and_are_not_failures",
    "tests/test_loop.py::test_default_output_has_one_live_line_per_trial",
    "tests/test_loop.py::test_every_row_is_whole",
    "tests/test_loop.py::test_keep_discard_and_the_branch",
    "tests/test_loop.py::test_the_driver_never_imports_the_code_under_test",
    "tests/test_loop.py::test_the_users_git_hooks_never_run",
    "tests/test_loop.py::test_trials_run_what_the_command_line_selects",
    "tests/test_loop.py::test_verbose_lists_each_trial_with_its_status_word",
    "tests/test_mutate_agent.py::test_a_resumed_run_does_not_propose_what_it_tried_before_it_stopped",
    "tests/test_outline.py::test_a_5000_line_surface_fits_the_default_budget_and_an_edit_deep_in_it_is_kept",
    "tests/test_prompt_caching.py::test_anthropic_requests_mark_the_stable_prefix_and_cached_tokens_are_logged",
    "tests/test_readme.py::test_steps_2_to_5_run_as_written_and_print_what_the_readme_shows",
    "tests/test_readme.py::test_the_quickstart_says_where_its_copy_is_and_leaves_the_plot_there",
    "tests/test_replay_agent.py::test_the_run_header_says_a_replay_run_ends_with_its_file",
    "tests/test_reports.py::test_every_trial_is_a_junit_testcase_with_its_figures",
    "tests/test_reports.py::test_the_audit_trail_accounts_for_every_trial",
    "tests/test_reports.py::test_the_progress_plot_is_a_png_in_the_run_folder",
    "tests/test_reports.py::test_without_matplotlib_the_run_says_how_to_get_the_plot",
    "tests/test_resume.py::test_the_header_says_where_a_run_starts_and_where_its_branch_is",
    "tests/test_sandbox.py::test_a_sandboxed_trial_cannot_write_frozen_files_reach_the_network_or_read_home",
    "tests/test_sandbox.py::test_without_the_sandbox_the_same_probe_gets_through",
    "tests/test_setup_errors.py::test_a_failing_baseline_keeps_its_log",
    "tests/test_setup_interrupted.py::test_leftovers_with_work_in_them_are_refused_with_how_to_remove_them",
    "tests/test_setup_interrupted.py::test_what_an_older_version_left_after_a_ctrl_c_is_cleared",
    "tests/test_timing.py::test_a_benchmark_fitness_test_drives_the_loop",
    "tests/test_trial_start.py::test_a_hang_no_test_limit_stops_leaves_every_threads_traceback_in_the_log",
    "tests/test_trial_start.py::test_a_test_that_starts_late_gets_only_what_is_left",
    "tests/test_trial_start.py::test_the_candidate_cannot_shadow_the_plugin_or_pytest_timeout",
    "tests/test_bench_search.py::test_model_and_hybrid_operators_ask_the_server_that_api_base_names",
    "tests/test_optuna_agent.py::test_a_run_keeps_its_study_in_the_run_folder",
    "tests/test_optuna_agent.py::test_a_resumed_run_resumes_its_study",
    "tests/test_optuna_agent.py::test_two_workers_ask_two_trials_and_each_is_told_its_own_row",
    "tests/test_hybrid_agent.py::test_a_real_run_against_the_model_server",
)

#: The attack tests run each attack without and with the sandbox; the quick check runs the first
#: (the sandbox has its own quick tests in test_sandbox.py), --slow both.
SANDBOXED = re.compile(r"[\[-]sandbox\]$")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true", default=False, help="also run the tests marked slow (.ci/run does)")
    parser.addoption(
        "--local-model",
        action="store_true",
        default=False,
        help="also run the tests marked local_model: a real small model served on 127.0.0.1 (minutes; CI never does)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """A plain ``pytest``, naming no tests and no ``-n``, runs on every core."""
    option = config.option
    named = config.args_source == pytest.Config.ArgsSource.ARGS
    if (
        config.pluginmanager.hasplugin("xdist")
        and "PYTEST_XDIST_WORKER" not in os.environ  # a worker itself: never workers of workers
        and not hasattr(config, "workerinput")
        and getattr(option, "numprocesses", 0) is None
        and not named
        and not option.collectonly
        and not option.usepdb
    ):
        option.numprocesses = "auto"


#: The longest tests of a --slow run (40 s or more on 2 cores), started first: pytest-xdist hands
#: tests out in collection order, and one of these started last keeps its worker busy alone.
LONGEST_FIRST = (
    "tests/test_setup_interrupted.py::test_interrupted_at_every_point_of_set_up_and_baseline",
    "tests/test_example_prompt.py::test_two_mutate_trials",
    "tests/test_example_buildtime.py::test_two_mutate_trials",
    "tests/test_example_prompt.py::test_the_loop_keeps_gold_and_evaluator_out_of_reach",
    "tests/test_setup_interrupted.py::test_a_real_ctrl_c_spread_over_the_baseline",
    "tests/test_example_clinical.py::test_two_mutate_trials",
    "tests/test_readme.py::test_the_first_command_as_typed_in_a_fresh_clone",
    "tests/test_example_clinical.py::test_a_better_preprocessing_is_parked_for_review_not_kept",
    "tests/test_example_sqlite.py::test_two_mutate_trials",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("local_model"):
        left_out = pytest.mark.skip(reason="a real local model: run with --local-model (see ../shared/local-model/README.md)")
        for item in items:
            if item.get_closest_marker("local_model"):
                item.add_marker(left_out)
    for item in items:
        if item.nodeid.split("[")[0] in LONG_RUNS or SANDBOXED.search(item.nodeid):
            item.add_marker(pytest.mark.slow)
    if config.getoption("slow"):
        first = {name: i for i, name in enumerate(LONGEST_FIRST)}
        items.sort(key=lambda item: first.get(item.nodeid.split("[")[0], len(first)))  # stable: the rest keep their order
        return
    skip = pytest.mark.skip(reason="slow: run with --slow (.ci/run does)")
    for item in items:
        if item.get_closest_marker("slow"):
            item.add_marker(skip)
