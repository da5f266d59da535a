from models.text import normalize


def test_expands_clinical_abbreviations():
    assert normalize("Malig neo bronch/lung NOS") == "malignant neoplasm bronchus lung unspecified"
    assert normalize("Cholera d/t vib cholerae") == "cholera due to vibrio cholerae"
    assert normalize("Fx femur w/o displ") == "fracture femur without displaced"
    assert normalize("Bact food poisoning NEC") == "bacterial food poisoning not elsewhere classified"
    assert normalize("Pain, unsp") == "pain unspecified"
    assert normalize("Malign neopl breast NOS") == "malignant neoplasm breast unspecified"
    assert normalize("Mal neo bronch/lung NOS") == "malignant neoplasm bronchus lung unspecified"
    assert normalize("Grand mal status") == "grand mal status"  # "mal" alone is not malignant
    assert normalize("Late effect of radiation") == "sequela of radiation"


def test_keeps_ambiguous_short_tokens():
    # "ca" is calcium or cancer, "cl" chloride or closed: expanding either would mislead.
    assert normalize("Ca serum") == "ca serum"
    assert normalize("Cl") == "cl"


def test_folds_case_accents_and_punctuation():
    assert normalize("Ménière's  DISEASE,  (left ear)") == "meniere s disease left ear"
