from __future__ import annotations

import pytest

from emotau.core._errors import UserError
from emotau.episode._variants import INTENSITIES, VariantLibrary, load_variant_file

BUILTINS = ["control", "neutral", "frustration", "anxiety", "anger", "confusion"]


@pytest.fixture(scope="module")
def lib() -> VariantLibrary:
    return VariantLibrary.default()


def test_builtins_present_with_three_intensities(lib: VariantLibrary) -> None:
    assert set(BUILTINS) <= set(lib.names())
    assert lib["control"].is_control and lib["control"].emotion is None
    assert lib["neutral"].emotion is None and not lib["neutral"].is_control
    for name in BUILTINS[2:]:
        v = lib[name]
        assert v.emotion == name
        assert set(v.texts) == set(INTENSITIES)
        assert len({v.texts[i] for i in INTENSITIES}) == 3  # the intensities really differ
        assert all(v.phrases.get(i) for i in INTENSITIES)


def test_neutral_placebo_matches_emotion_length(lib: VariantLibrary) -> None:
    for intensity in INTENSITIES:
        emo = [len(lib[n].texts[intensity]) for n in BUILTINS[2:]]
        mean = sum(emo) / len(emo)
        assert abs(len(lib["neutral"].texts[intensity]) - mean) / mean < 0.15


def test_control_is_base_prompt_exactly(lib: VariantLibrary) -> None:
    sel = lib.select("control")
    assert sel.text == "" and sel.apply("BASE") == "BASE"


def test_variant_only_appends(lib: VariantLibrary) -> None:
    sel = lib.select("anger:severe")
    out = sel.apply("BASE PROMPT")
    assert out.startswith("BASE PROMPT\n\n") and out.endswith(lib["anger"].texts["severe"])
    assert sel.label == "anger:severe"
    assert lib.select("anger").label == "anger"  # moderate is the default and stays implicit
    assert lib.select("anger:moderate").label == "anger"


def test_composition_order_and_record(lib: VariantLibrary) -> None:
    sel = lib.select("anxiety+confusion:mild")
    assert sel.label == "anxiety+confusion:mild"
    assert sel.text == lib["anxiety"].texts["moderate"] + "\n\n" + lib["confusion"].texts["mild"]
    rec = sel.record()
    assert [c["name"] for c in rec["components"]] == ["anxiety", "confusion"]
    assert rec["text"] == sel.text and len(rec["text_sha256"]) == 64
    assert sel.emotions == ["anxiety", "confusion"]
    assert sel.text_sha256 != lib.select("confusion:mild+anxiety").text_sha256


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("joy", "unknown variant 'joy'; allowed: control"),
        ("anger:extreme", "unknown intensity 'extreme'"),
        ("control+anger", "cannot be combined"),
        ("anger+anger:mild", "same variant twice"),
        ("control:severe", "has no intensities"),
        ("", "empty variant"),
    ],
)
def test_bad_selections(lib: VariantLibrary, spec: str, needle: str) -> None:
    with pytest.raises(UserError, match=needle):
        lib.select(spec)


def test_toml_and_yaml_files(tmp_path) -> None:
    t = tmp_path / "v.toml"
    t.write_text(
        '[variants.impatient]\ndescription = "d"\nemotion = "frustration"\n'
        'text = "Be terse."\nphrases = ["Hurry."]\n'
        '[variants.grief.text]\nmild = "a"\nmoderate = "b"\nsevere = "c"\n'
    )
    y = tmp_path / "v.yaml"
    y.write_text("variants:\n  sleepy:\n    emotion: confusion\n    text: Yawn a lot.\n")
    lib = VariantLibrary.default([t, y])
    assert lib.select("impatient:severe").text == "Be terse."
    assert lib.select("grief:mild").text == "a"
    assert lib["impatient"].phrases["mild"] == ("Hurry.",)
    assert lib.select("sleepy+anger").emotions == ["confusion", "anger"]
    assert lib["grief"].emotion is None  # a placebo-like custom variant


@pytest.mark.parametrize(
    ("name", "body", "needle"),
    [
        ("a.toml", "[variants.x]\ntext = 3\n", "variant 'x', field 'text': must be a string"),
        (
            "a.toml",
            "[variants.x]\ncolour = 'red'\ntext='t'\n",
            "variant 'x', field 'colour': unknown",
        ),
        ("a.toml", "[variants.x.text]\nmild='a'\n", "field 'text.moderate': missing"),
        ("a.toml", "[variants.x.text]\nhuge='a'\n", "field 'text.huge'"),
        ("a.toml", "[variants.x]\nemotion='anger'\n", "field 'text': a variant with an emotion"),
        (
            "a.toml",
            "[variants.x]\nemotion='rage'\ntext='t'\n",
            "variant 'x', field 'emotion': unknown emotion 'rage'; "
            "allowed: frustration, anxiety, anger, confusion",
        ),
        ("a.yaml", "variants:\n  x:\n    emotion: Anger\n    text: t\n", "unknown emotion 'Anger'"),
        ("a.toml", "[variants.x]\ntext='t'\nphrases={mild=[1]}\n", "field 'phrases.mild'"),
        ("a.toml", "variants = 3\n", "field 'variants'"),
        ("a.toml", "[variants.x\n", "invalid TOML"),
        ("a.yaml", "variants: [unclosed\n", "invalid YAML"),
        ("a.json", "{}", "expected a .toml, .yaml or .yml"),
        ("a.toml", "[variants.'bad name']\ntext='t'\n", "variant 'bad name'"),
    ],
)
def test_variant_file_errors_name_file_variant_field(tmp_path, name, body, needle) -> None:
    p = tmp_path / name
    p.write_text(body)
    with pytest.raises(UserError) as exc:
        load_variant_file(p)
    assert str(p) in str(exc.value)
    assert needle in str(exc.value)


def test_missing_variant_file(tmp_path) -> None:
    with pytest.raises(UserError, match="cannot read variants file"):
        load_variant_file(tmp_path / "nope.toml")
