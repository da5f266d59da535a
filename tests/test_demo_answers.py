"""The demo's answer key: the CMS GEM targets of its ICD-9-CM codes, dotted as both code systems write them."""

from service.demo import gem_answers


def test_gem_answers_for_the_demo_codes():
    answers = gem_answers()
    assert "E11.9" in answers["250.00"] and "E11.69" not in answers["250.00"]
    assert "N39.0" in answers["599.0"] and "O86.20" not in answers["599.0"]
    assert answers["486"] == {"J18.9"}
