"""`make mutation-ci` fails unless every mutant was checked and each survivor is explained.

It once passed with 912 mutants "not checked": mutmut's clean run had failed, no mutant was
tried, and the report only looked for survivors.
"""

from __future__ import annotations

import mutation_report


def test_a_run_that_checked_nothing_fails() -> None:
    status = {"kiosk.policy.x__mutmut_1": "not checked", "kiosk.policy.x__mutmut_2": "killed"}
    [problem] = mutation_report.unexplained(status, set())
    assert "1 mutants not checked" in problem
    assert mutation_report.unexplained({}, set()) != []


def test_explained_survivors_pass_and_unexplained_ones_are_named() -> None:
    status = {"kiosk.policy.x__mutmut_1": "survived", "kiosk.policy.x__mutmut_2": "killed",
              "kiosk.policy.x__mutmut_3": "timeout"}
    assert mutation_report.unexplained(
        status, {"kiosk.policy.x__mutmut_1", "kiosk.policy.x__mutmut_3"}) == []
    problems = mutation_report.unexplained(status, {"kiosk.policy.x__mutmut_1"})
    assert len(problems) == 1 and "timeout: kiosk.policy.x__mutmut_3" in problems[0]


def test_each_mutated_module_is_listed_with_its_counts() -> None:
    status = {"kiosk.audit.verify.x_verify_log__mutmut_1": "killed",
              "kiosk.audit.verify.xǁVerifyResultǁadd__mutmut_1": "survived",
              "kiosk.audit.scan.x_check_rows__mutmut_2": "timeout"}
    assert mutation_report.by_module(status, {"kiosk.audit.verify.xǁVerifyResultǁadd__mutmut_1"}) == [
        "  kiosk.audit.scan: 1 mutants, 0 killed, 1 survived or timed out (0 explained)",
        "  kiosk.audit.verify: 2 mutants, 1 killed, 1 survived or timed out (1 explained)",
    ]


def test_the_migrated_template_is_made_again_after_a_run_removed_it(tmp_path: object) -> None:
    """mutmut runs pytest several times in one process; the second run's cabinets found the
    first run's template deleted ("unable to open database file")."""
    import migrated_template

    first = migrated_template._migrated_template()
    migrated_template.remove()
    assert not first.exists()
    migrated_template.install()
    second = migrated_template._migrated_template()
    assert second.exists()
