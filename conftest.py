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

#: End-to-end tests of ten seconds or more (whole loops, interrupted and resumed runs, several
#: workers, the model agent's conversations, the examples' plain runs), measured with
#: ``--durations``: each has a quicker neighbour in the default run, and all of them run with --slow.
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
    "tests/test_prompt_defaults.py::test_a_deterministic_evaluator_and_a_baseline_timed_budget_are_said_plainly",
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
        return
    skip = pytest.mark.skip(reason="slow: run with --slow (.ci/run does)")
    for item in items:
        if item.get_closest_marker("slow"):
            item.add_marker(skip)
