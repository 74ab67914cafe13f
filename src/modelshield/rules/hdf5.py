"""Rules about HDF5 files (and legacy Keras `.h5` models): references to other files, user blocks and
attributes that carry code. Lambda layers in a legacy `model_config` are reported with the KERAS rules."""

from __future__ import annotations

from modelshield.engine.findings import Category, Confidence, Severity
from modelshield.engine.rules import Rule

_HDF5_LINKS = "https://docs.hdfgroup.org/hdf5/develop/group___h5_l.html"
_HDF5_VDS = "https://docs.hdfgroup.org/hdf5/develop/_v_d_s.html"

HDF5_EXTERNAL_LINK = Rule(
    id="HDF5-EXTERNAL-LINK",
    title="HDF5 external link to another file",
    severity=Severity.MEDIUM,
    category=Category.FILESYSTEM,
    cwe="CWE-73",
    confidence=Confidence.HIGH,
    references=(_HDF5_LINKS,),
    description=(
        "A group member is an external link: opening that member makes the HDF5 library open another "
        "file named by the scanned file and read it as part of the model. What is loaded then depends "
        "on files outside the one that was scanned."
    ),
    remediation="Ship a self-contained file (h5py: copy the linked objects in) and scan every file it names.",
)

HDF5_EXTERNAL_STORAGE = Rule(
    id="HDF5-EXTERNAL-STORAGE",
    title="HDF5 dataset reads its data from other files",
    severity=Severity.MEDIUM,
    category=Category.FILESYSTEM,
    cwe="CWE-73",
    references=(_HDF5_VDS,),
    description=(
        "A dataset keeps its raw data in external files (contiguous external storage) or is a virtual "
        "dataset mapping other files' datasets. Reading it reads those files: data from outside the "
        "scanned file (or any readable file, such as a secret) ends up in the model's tensors."
    ),
    remediation="Store the data inside the file and scan every file it names.",
)

HDF5_PATH_ESCAPE = Rule(
    id="HDF5-PATH-ESCAPE",
    title="HDF5 file names a file by absolute path or outside its directory",
    severity=Severity.HIGH,
    category=Category.FILESYSTEM,
    cwe="CWE-22",
    references=(_HDF5_LINKS, _HDF5_VDS),
    description=(
        "An external link, external raw storage or virtual dataset source names an absolute path or a "
        "path with `..`: loading the model reads a file anywhere on the host (for example /etc/passwd "
        "or a key), not a file shipped with the model."
    ),
    remediation="Do not load this file; a model has no reason to read files outside its own directory.",
)

HDF5_USER_BLOCK = Rule(
    id="HDF5-USER-BLOCK",
    title="HDF5 user block holds data",
    severity=Severity.LOW,
    category=Category.EMBEDDED_PAYLOAD,
    cwe="CWE-506",
    confidence=Confidence.MEDIUM,
    description=(
        "The file begins with a user block, bytes before the HDF5 superblock that HDF5 ignores. Models "
        "have no use for it; it makes the file a polyglot (an executable, script or pickle that is also "
        "a valid HDF5 file). Its content is scanned as a child blob `(user block)`, so a payload there "
        "is reported by its own rule (an executable, a pickle); the block itself is only noted, since "
        "tools such as MATLAB (v7.3 .mat files) put a text header there."
    ),
    remediation="Rewrite the file without a user block (h5py: userblock_size=0) and review its content.",
)

HDF5_CODE_ATTRIBUTE = Rule(
    id="HDF5-CODE-ATTRIBUTE",
    title="HDF5 attribute holds code, a pickle or an executable",
    severity=Severity.MEDIUM,
    category=Category.CODE_EXECUTION,
    cwe="CWE-94",
    confidence=Confidence.MEDIUM,
    description=(
        "A string or byte attribute looks like Python source, a pickle stream or an executable. HDF5 "
        "never runs attributes, but loading code that evaluates, unpickles or writes them out does; "
        "model files have no need to carry code."
    ),
    remediation="Check which loader reads this attribute and what it does with it before loading the file.",
)

RULES: tuple[Rule, ...] = (
    HDF5_EXTERNAL_LINK,
    HDF5_EXTERNAL_STORAGE,
    HDF5_PATH_ESCAPE,
    HDF5_USER_BLOCK,
    HDF5_CODE_ATTRIBUTE,
)
