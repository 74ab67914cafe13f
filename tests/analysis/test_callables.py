"""Callable verdicts: allowlist first, denylist with reasons and categories, unknown otherwise."""

from __future__ import annotations

import sys

import pytest

from modelshield.analysis.callables import CallableJudge, Judgement
from modelshield.engine.findings import Category
from modelshield.policy import Policy


@pytest.fixture(scope="module")
def judge() -> CallableJudge:
    return CallableJudge(Policy())


@pytest.mark.parametrize(
    ("name", "category"),
    [
        ("os.system", Category.CODE_EXECUTION),
        ("posix.system", Category.CODE_EXECUTION),  # what os.system pickles as on Linux
        ("nt.system", Category.CODE_EXECUTION),  # … and on Windows
        ("subprocess.Popen", Category.CODE_EXECUTION),
        ("builtins.eval", Category.CODE_EXECUTION),
        ("__builtin__.eval", Category.CODE_EXECUTION),  # Python 2 alias
        ("builtins.open", Category.FILESYSTEM),
        ("shutil.rmtree", Category.FILESYSTEM),
        ("socket.create_connection", Category.NETWORK),
        ("urllib.request.urlopen", Category.NETWORK),
        ("importlib.import_module", Category.UNSAFE_MODULE),
        ("pickle.loads", Category.CODE_EXECUTION),
        ("torch.hub.load", Category.NETWORK),
        ("numpy.testing._private.utils.runstring", Category.CODE_EXECUTION),
        ("pydoc.pipepager", Category.CODE_EXECUTION),
        ("cProfile.run", Category.CODE_EXECUTION),
        ("paramiko.client.SSHClient", Category.NETWORK),  # not installed here: verdict is data
    ],
)
def test_denylisted_names_are_dangerous_with_their_category(
    judge: CallableJudge, name: str, category: Category
) -> None:
    verdict = judge.judge(name)
    assert verdict.judgement is Judgement.DANGEROUS
    assert verdict.category is category
    assert verdict.reason


@pytest.mark.parametrize(
    "name",
    [
        "__main__.os.system",  # protocol-4 dotted traversal out of a user module
        "torch.serialization.os.system",
        "collections.OrderedDict.__init__.__globals__",  # dunder escape
        "builtins.object.__subclasses__",
    ],
)
def test_traversals_are_judged_by_what_they_reach(judge: CallableJudge, name: str) -> None:
    assert judge.judge(name).judgement is Judgement.DANGEROUS


def test_allowlisted_names_are_safe(judge: CallableJudge) -> None:
    for name in ("collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "copyreg._reconstructor"):
        assert judge.judge(name).judgement is Judgement.SAFE, name


def test_unknown_names_are_unknown_never_safe(judge: CallableJudge) -> None:
    verdict = judge.judge("acme_private_lib.models.Net")
    assert verdict.judgement is Judgement.UNKNOWN
    assert "acme_private_lib" not in sys.modules  # judging never imports anything


def test_policy_can_allow_and_deny(judge: CallableJudge) -> None:
    policy = Policy(
        allowed_callables=frozenset({"acme.*"}), denied_callables=frozenset({"collections.Counter"})
    )
    custom = CallableJudge(policy)
    assert custom.judge("acme.layers.Block").judgement is Judgement.SAFE
    assert custom.judge("collections.Counter").judgement is Judgement.DANGEROUS
    # a policy allowance never outranks the escape check
    assert custom.judge("acme.layers.Block.__init__.__globals__").judgement is Judgement.DANGEROUS


def test_rebuild_of_a_trusted_namespace_class_is_safe_but_a_call_is_not(judge: CallableJudge) -> None:
    name = "torch.nn.modules.some_future_module.FutureLayer"
    assert judge.judge(name, rebuild=True).judgement is Judgement.SAFE
    assert judge.judge(name).judgement is Judgement.UNKNOWN


def test_fast_allowlist_reading_agrees_with_tomllib() -> None:
    from importlib import resources

    import tomllib

    from modelshield.analysis.callables import read_allowlist

    text = resources.files("modelshield.policy").joinpath("allowlist.toml").read_text(encoding="utf-8")
    fast = read_allowlist(text)
    full = tomllib.loads(text)
    assert {k: set(v) for k, v in fast.items()} == {k: set(v) for k, v in full.items()}
    # A line the fast reader does not know makes it defer to the real TOML parser.
    odd = '[callables]\n"a.b" = "x"\nc.d = "y"\n'
    assert set(read_allowlist(odd)["callables"]) == {"a.b", "c"}
