"""TensorFlow graphs: SavedModel (saved_model.pb) and frozen GraphDef (.pb), recognised by content.

Every node of every graph and library function is judged by its op: a denylist with reasons (files,
Python, network, debugger hooks), an allowlist of ordinary ops, and "unknown" (review) for the rest.
Read with the bounded wire reader; tensor constants are never decoded."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from modelshield.analysis.protobuf import LEN, VARINT, ProtobufError, WireField, WireReader
from modelshield.engine.blob import Blob
from modelshield.engine.context import ScanContext
from modelshield.engine.findings import Location, ScanIssue, Severity
from modelshield.engine.rules import Rule
from modelshield.formats.base import ScanEvent
from modelshield.rules import tensorflow as rules

name = "tensorflow"
version = "1"

MAX_NAME = 512
MAX_FINDINGS_PER_RULE = 32
MAX_SNIFF_FIELDS = 64
MAX_UNKNOWN_FIELDS = 8
MAX_KEPT_INPUTS = 2
MAX_IDENTITY_HOPS = 16
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")
_OP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.>-]{0,255}$")

PYTHON_OPS = {
    "PyFunc": "runs a Python callable registered in the loading process",
    "PyFuncStateless": "runs a Python callable registered in the loading process",
    "EagerPyFunc": "runs a Python callable registered in the loading process",
}
_FILE_OPS = """
ReadFile WriteFile MatchingFiles MatchingFilesDataset ExperimentalMatchingFilesDataset ImmutableConst
WholeFileReader WholeFileReaderV2 TextLineReader TextLineReaderV2 FixedLengthRecordReader
FixedLengthRecordReaderV2 TFRecordReader TFRecordReaderV2 LMDBReader LMDBDataset ExperimentalLMDBDataset
TFRecordDataset TFRecordDatasetV2 TextLineDataset FixedLengthRecordDataset FixedLengthRecordDatasetV2
CSVDataset CSVDatasetV2 ExperimentalCSVDataset SqlDataset ExperimentalSqlDataset DatasetToTFRecord
ExperimentalDatasetToTFRecord SaveDataset SaveDatasetV2 LoadDataset SnapshotDataset SnapshotDatasetV2
CreateSummaryFileWriter CreateSummaryDbWriter WriteSummary WriteRawProtoSummary WriteScalarSummary
WriteHistogramSummary WriteImageSummary WriteAudioSummary WriteGraphSummary ImportEvent
FlushSummaryWriter CloseSummaryWriter SummaryWriter DecodeProtoV2 EncodeProto
"""
FILE_OPS = dict.fromkeys(_FILE_OPS.split(), "reads, lists or writes files on the host")
FILE_OPS["ImmutableConst"] = "memory-maps a file named in its attributes"
FILE_OPS["DecodeProtoV2"] = "may load protobuf descriptors from a file named in its attributes"
FILE_OPS["EncodeProto"] = "may load protobuf descriptors from a file named in its attributes"
NETWORK_OPS = dict.fromkeys(
    (
        "DataServiceDataset",
        "DataServiceDatasetV2",
        "DataServiceDatasetV3",
        "DataServiceDatasetV4",
        "RegisterDataset",
        "RegisterDatasetV2",
        "DistributedSave",
    ),
    "connects to a remote tf.data service",
)
NETWORK_OPS["RemoteCall"] = "runs a function on a remote target named by a tensor"
DEBUG_OPS = dict.fromkeys(
    (
        "DebugIdentity",
        "DebugIdentityV2",
        "DebugIdentityV3",
        "DebugNanCount",
        "DebugNumericSummary",
        "DebugNumericSummaryV2",
        "Copy",
        "CopyHost",
    ),
    "tfdbg hook that sends tensors to the URLs in its attributes",
)

# Ordinary ops: math, nn, array, control flow, variables, checkpoints, strings, images, tf.data.
_ORDINARY = """
Const HostConst Identity IdentityN NoOp Placeholder PlaceholderV2 PlaceholderWithDefault _Arg _Retval
StatefulPartitionedCall PartitionedCall SymbolicGradient If StatelessIf While StatelessWhile Case
StatelessCase For Enter Exit Merge Switch NextIteration LoopCond ControlTrigger RefSwitch RefEnter
RefMerge RefIdentity RefExit RefNextIteration Assert CheckNumerics CheckNumericsV2 StopGradient
PreventGradient Snapshot EnsureShape Print PrintV2 Timestamp
VarHandleOp ReadVariableOp AssignVariableOp AssignAddVariableOp AssignSubVariableOp VarIsInitializedOp
DestroyResourceOp DisableCopyOnRead VariableShape ResourceGather ResourceGatherNd ResourceScatterUpdate
ResourceScatterAdd ResourceScatterSub ResourceScatterMul ResourceScatterDiv ResourceScatterMin
ResourceScatterMax ResourceScatterNdUpdate ResourceScatterNdAdd ResourceStridedSliceAssign
Variable VariableV2 TemporaryVariable DestroyTemporaryVariable Assign AssignAdd AssignSub
IsVariableInitialized ScatterUpdate ScatterAdd ScatterSub ScatterNdUpdate ScatterNdAdd
SaveV2 RestoreV2 MergeV2Checkpoints ShardedFilename ShardedFilespec StringJoin StaticRegexFullMatch
RegexFullMatch Save SaveSlices Restore RestoreSlice
Add AddV2 AddN AccumulateNV2 Sub Mul MulNoNan Div DivNoNan RealDiv TruncateDiv FloorDiv FloorMod
TruncateMod Mod Neg Abs Sign Floor Ceil Round Rint Reciprocal Inv Square Sqrt Rsqrt Exp Expm1 Log Log1p
Pow Maximum Minimum SquaredDifference Xdivy Xlogy Xlog1py Sin Cos Tan Asin Acos Atan Atan2 Sinh Cosh
Tanh Asinh Acosh Atanh Sigmoid Erf Erfc Erfinv Ndtri Lgamma Digamma Igamma Igammac Betainc Zeta
Polygamma IsNan IsInf IsFinite ClipByValue Cumsum Cumprod CumulativeLogsumexp Sum Prod Mean Max Min
All Any ArgMax ArgMin EuclideanNorm Equal NotEqual Less LessEqual Greater GreaterEqual ApproximateEqual
LogicalAnd LogicalOr LogicalNot BitwiseAnd BitwiseOr BitwiseXor Invert LeftShift RightShift
PopulationCount Cast Bitcast Complex Real Imag Angle ComplexAbs Conj ZerosLike OnesLike
MatMul BatchMatMul BatchMatMulV2 BatchMatMulV3 SparseMatMul Einsum Cross MatrixBandPart MatrixDiag
MatrixDiagV2 MatrixDiagV3 MatrixDiagPart MatrixDiagPartV2 MatrixDiagPartV3 MatrixSetDiag
MatrixSetDiagV2 MatrixSetDiagV3 MatrixInverse MatrixDeterminant LogMatrixDeterminant Cholesky Qr Svd
SelfAdjointEigV2 MatrixSolve MatrixTriangularSolve MatrixExponential MatrixLogarithm Diag DiagPart
BiasAdd BiasAddV1 Relu Relu6 Elu Selu LeakyRelu Softplus Softsign Softmax LogSoftmax Conv2D Conv3D
Conv2DBackpropInput Conv2DBackpropFilter Conv3DBackpropInputV2 Conv3DBackpropFilterV2
DepthwiseConv2dNative DepthwiseConv2dNativeBackpropInput DepthwiseConv2dNativeBackpropFilter
MaxPool MaxPoolV2 MaxPool3D AvgPool AvgPool3D MaxPoolWithArgmax FusedBatchNorm FusedBatchNormV2
FusedBatchNormV3 LRN L2Loss InTopKV2 TopKV2 NthElement Dilation2D
SoftmaxCrossEntropyWithLogits SparseSoftmaxCrossEntropyWithLogits CTCLoss CTCGreedyDecoder
CTCBeamSearchDecoder _FusedConv2D _FusedMatMul _FusedBatchNormEx _FusedDepthwiseConv2dNative
ReluGrad Relu6Grad EluGrad SeluGrad LeakyReluGrad SoftplusGrad SoftsignGrad TanhGrad SigmoidGrad
RsqrtGrad SqrtGrad ReciprocalGrad BiasAddGrad MaxPoolGrad MaxPoolGradV2 AvgPoolGrad
FusedBatchNormGrad FusedBatchNormGradV2 FusedBatchNormGradV3 LRNGrad BroadcastGradientArgs
Reshape Shape ShapeN Size Rank ExpandDims Squeeze Transpose ConjugateTranspose Pack Unpack Concat
ConcatV2 ConcatOffset Split SplitV Slice StridedSlice StridedSliceGrad StridedSliceAssign
TensorStridedSliceUpdate Tile TileGrad Fill Range LinSpace Pad PadV2 MirrorPad MirrorPadGrad
Gather GatherV2 GatherNd
ScatterNd ScatterNdNonAliasingAdd TensorScatterUpdate TensorScatterAdd TensorScatterSub TensorScatterMax
TensorScatterMin Where Select SelectV2 Reverse ReverseV2 ReverseSequence Roll BroadcastTo BroadcastArgs
BroadcastGradientArgs OneHot Unique UniqueV2 UniqueWithCounts UniqueWithCountsV2 ListDiff SetSize
DenseToDenseSetOperation DynamicStitch ParallelDynamicStitch DynamicPartition InvertPermutation
SpaceToBatch SpaceToBatchND BatchToSpace BatchToSpaceND SpaceToDepth DepthToSpace ExtractImagePatches
ExtractVolumePatches UnsortedSegmentSum UnsortedSegmentMax UnsortedSegmentMin UnsortedSegmentProd
SegmentSum SegmentMean SegmentMax SegmentMin SegmentProd SparseSegmentSum SparseSegmentMean
SparseSegmentSqrtN SparseSegmentSumWithNumSegments SparseSegmentMeanWithNumSegments SparseToDense
SparseTensorDenseMatMul SparseTensorDenseAdd SparseFillEmptyRows SparseReshape SparseReorder
SparseAdd SparseConcat SparseSlice SparseReduceSum SparseSoftmax SparseCross SparseCrossV2
SparseCrossHashed SerializeSparse DeserializeSparse Empty Bucketize HistogramFixedWidth
EmptyTensorList TensorListReserve TensorListFromTensor TensorListGetItem TensorListSetItem
TensorListStack TensorListLength TensorListElementShape TensorListPushBack TensorListPopBack
TensorListConcatV2 TensorListSplit TensorListGather TensorListScatterIntoExistingList TensorListResize
TensorArrayV3 TensorArrayReadV3 TensorArrayWriteV3 TensorArrayGatherV3 TensorArrayScatterV3
TensorArraySizeV3 TensorArrayConcatV3 TensorArraySplitV3 TensorArrayCloseV3 TensorArrayGradV3
RandomUniform RandomUniformInt RandomStandardNormal TruncatedNormal RandomShuffle RandomGammaGrad
RandomGamma RandomPoisson RandomPoissonV2 Multinomial StatelessMultinomial StatelessRandomUniform
StatelessRandomNormal StatelessTruncatedNormal StatelessRandomUniformInt StatelessRandomUniformV2
StatelessRandomNormalV2 StatelessTruncatedNormalV2 StatelessRandomUniformIntV2
StatelessRandomUniformFullIntV2 StatelessRandomGetKeyCounter StatelessRandomGetKeyCounterAlg
StatelessRandomGetAlg StatelessRandomBinomial StatelessRandomGammaV2 StatelessRandomGammaV3
StatelessRandomPoisson StatelessShuffle RngReadAndSkip RngSkip StatefulUniform StatefulUniformInt
StatefulStandardNormalV2 StatefulTruncatedNormal AnonymousSeedGenerator DeleteSeedGenerator
HashTable HashTableV2 MutableHashTable MutableHashTableV2 MutableHashTableOfTensorsV2
MutableDenseHashTableV2 AnonymousHashTable AnonymousMutableHashTable LookupTableFind
LookupTableFindV2 LookupTableInsertV2 LookupTableRemoveV2 LookupTableImportV2 LookupTableExportV2
LookupTableSizeV2 InitializeTable InitializeTableV2 InitializeTableFromTextFile
InitializeTableFromTextFileV2 InitializeTableFromDataset
AsString StringFormat StringLength StringLower StringUpper StringStrip StringSplit StringSplitV2
StringToHashBucket StringToHashBucketFast StringToHashBucketStrong StringToNumber StringNGrams
Substr ReduceJoin RegexReplace StaticRegexReplace EncodeBase64 DecodeBase64 UnicodeDecode
UnicodeDecodeWithOffsets UnicodeEncode UnicodeScript UnicodeTranscode Fingerprint
DecodeJpeg DecodePng DecodeGif DecodeBmp DecodeImage DecodeAndCropJpeg EncodeJpeg EncodePng
DecodeRaw DecodePaddedRaw DecodeCompressed DecodeCSV DecodeJSONExample DecodeWav EncodeWav
AudioSpectrogram Mfcc ResizeBilinear ResizeNearestNeighbor ResizeBicubic ResizeArea
ScaleAndTranslate CropAndResize NonMaxSuppression NonMaxSuppressionV2 NonMaxSuppressionV3
NonMaxSuppressionV4 NonMaxSuppressionV5 CombinedNonMaxSuppression AdjustContrastv2 AdjustHue
AdjustSaturation RGBToHSV HSVToRGB DrawBoundingBoxes DrawBoundingBoxesV2 SampleDistortedBoundingBox
SampleDistortedBoundingBoxV2 ImageProjectiveTransformV2 ImageProjectiveTransformV3
ParseExample ParseExampleV2 ParseSingleExample ParseSequenceExample ParseSequenceExampleV2
ParseSingleSequenceExample ParseTensor SerializeTensor
RaggedTensorToTensor RaggedTensorFromVariant RaggedTensorToVariant RaggedTensorToSparse RaggedGather
RaggedRange RaggedCross RaggedTensorToVariantGradient RaggedBincount Bincount DenseBincount
QuantizeV2 Dequantize QuantizeAndDequantize QuantizeAndDequantizeV2 QuantizeAndDequantizeV3
QuantizeAndDequantizeV4 FakeQuantWithMinMaxArgs FakeQuantWithMinMaxVars
FakeQuantWithMinMaxVarsPerChannel FFT IFFT FFT2D IFFT2D FFT3D IFFT3D RFFT IRFFT RFFT2D IRFFT2D
RFFT3D IRFFT3D BlockLSTM BlockLSTMV2 LSTMBlockCell GRUBlockCell CudnnRNN CudnnRNNV2 CudnnRNNV3
CudnnRNNBackprop CudnnRNNBackpropV2 CudnnRNNBackpropV3
CudnnRNNParamsToCanonical CudnnRNNParamsToCanonicalV2 CudnnRNNCanonicalToParams
CudnnRNNCanonicalToParamsV2 XlaCallModule XlaSharding XlaConvV2 XlaDotV2 XlaGather XlaScatter
XlaReduce XlaReduceWindow XlaPad XlaDynamicSlice XlaDynamicUpdateSlice XlaSelectAndScatter
ApplyGradientDescent ApplyMomentum ApplyAdam ApplyAdagrad ApplyRMSProp ResourceApplyGradientDescent
ResourceApplyMomentum ResourceApplyKerasMomentum ResourceApplyAdam ResourceApplyAdamWithAmsgrad
ResourceApplyAdagrad ResourceApplyAdagradV2 ResourceApplyRMSProp ResourceApplyCenteredRMSProp
ResourceApplyAdadelta ResourceApplyFtrl ResourceApplyFtrlV2 ResourceApplyAdaMax ResourceSparseApplyAdagradV2
OptionalFromValue OptionalGetValue OptionalHasValue OptionalNone
TensorDataset TensorSliceDataset SparseTensorSliceDataset RangeDataset BatchDataset BatchDatasetV2
PaddedBatchDataset PaddedBatchDatasetV2 MapDataset ParallelMapDataset ParallelMapDatasetV2
FlatMapDataset InterleaveDataset ParallelInterleaveDatasetV4 FilterDataset PrefetchDataset
ShuffleDataset ShuffleDatasetV2 ShuffleDatasetV3 ShuffleAndRepeatDataset RepeatDataset TakeDataset
SkipDataset ZipDataset ConcatenateDataset CacheDatasetV2 MemoryCacheDataset AnonymousMemoryCache
DeleteMemoryCache ModelDataset OptimizeDataset OptimizeDatasetV2 OptionsDataset MapAndBatchDataset
ParallelBatchDataset UnbatchDataset WindowDataset ScanDataset GroupByWindowDataset
AssertCardinalityDataset AssertNextDataset DummyIterationCounter FinalizeDataset ReduceDataset
DatasetCardinality DatasetToGraphV2 IteratorV2 IteratorGetNext IteratorGetNextSync
IteratorGetNextAsOptional IteratorToStringHandle IteratorFromStringHandleV2 MakeIterator
AnonymousIterator AnonymousIteratorV2 AnonymousIteratorV3 DeleteIterator OneShotIterator
AnonymousMultiDeviceIteratorV3 MultiDeviceIteratorGetNextFromShard
"""
ORDINARY_OPS = frozenset(_ORDINARY.split())
# Ordinary ops that read the file named by their second input: fine when that name is a SavedModel
# asset (a function argument bound to assets/, a fed placeholder, an asset_file_def tensor), a file
# read on the host when the graph spells the name itself (they run while the model loads).
TABLE_FILE_OPS = frozenset({"InitializeTableFromTextFile", "InitializeTableFromTextFileV2"})
_FED = {"Placeholder", "PlaceholderWithDefault", "_Arg"}  # given by the caller (the loader feeds assets)
_FILENAME_SOURCES = {"Identity", "Const", *_FED}

# Field numbers of TensorFlow's protos.
SAVED_MODEL_FIELDS = {1: VARINT, 2: LEN}
META_GRAPH_FIELDS = {1: LEN, 2: LEN, 3: LEN, 4: LEN, 5: LEN, 6: LEN, 7: LEN}
GRAPH_FIELDS = {1: LEN, 2: LEN, 3: VARINT, 4: LEN, 5: LEN}  # node, library, version, versions, debug_info
GRAPH_LIBRARY = 2
ASSETS_COLLECTION = "saved_model_assets"
NODE_FIELDS = {1: LEN, 2: LEN, 3: LEN, 4: LEN, 5: LEN, 6: LEN, 7: LEN}


def sniff(blob: Blob) -> bool:
    """A SavedModel (schema version, then meta graphs) or a GraphDef whose first node has a name
    and an op that reads like an op name; every top-level field of the right kind."""
    head = blob.head(2)
    if len(head) < 2:
        return False
    reader = WireReader(blob, max_fields=MAX_SNIFF_FIELDS * 8)
    try:
        if head[0] == 0x08:
            return _sniff_saved_model(reader)
        if head[0] == 0x0A:
            return _sniff_graph_def(reader, 0, reader.size)
    except (ProtobufError, StopIteration):
        return False
    return False


def _sniff_saved_model(reader: WireReader) -> bool:
    meta_graphs = 0
    try:
        unknown = 0
        for count, f in enumerate(reader.fields(0, reader.size)):
            if count >= MAX_SNIFF_FIELDS:
                break
            if f.number not in SAVED_MODEL_FIELDS and count > 0:
                unknown += 1  # skipped by protobuf loaders: a few must not hide the model
                if unknown > MAX_UNKNOWN_FIELDS:
                    return False
                continue
            if SAVED_MODEL_FIELDS.get(f.number) != f.wire_type:
                return False
            if f.number == 1 and (count != 0 or f.value != 1):
                return False
            if f.number == 2:
                meta_graphs += 1
                first = next(reader.message(f, 1))
                if META_GRAPH_FIELDS.get(first.number) != first.wire_type:
                    return False
    except ProtobufError as exc:
        # Truncated or damaged after the schema version: still a SavedModel (reported malformed)
        # when the broken field is a meta graph that starts like one.
        return meta_graphs > 0 or (
            reader.blob.head(2) == b"\x08\x01" and _meta_graph_starts_well(reader, exc.offset)
        )
    return meta_graphs > 0


def _meta_graph_starts_well(reader: WireReader, at: int) -> bool:
    try:
        key, pos = reader.varint(at, reader.size)
        if key != (2 << 3) | LEN:
            return False
        _, pos = reader.varint(pos, reader.size)
        key, pos = reader.varint(pos, reader.size)
        if META_GRAPH_FIELDS.get(key >> 3) != key & 7:
            return False
        length, pos = reader.varint(pos, reader.size)
    except ProtobufError:
        return False
    return pos + length <= reader.size


def _sniff_graph_def(reader: WireReader, offset: int, length: int) -> bool:
    """The first node must read as a NodeDef with a name and an op name; after it, a break in the
    wire format (a truncated graph) still claims the file, so the scan reports it malformed."""
    first_node = False
    unknown = 0
    try:
        for count, f in enumerate(reader.fields(offset, length)):
            if count >= MAX_SNIFF_FIELDS:
                break
            if count == 0:
                if f.number != 1 or f.wire_type != LEN:
                    return False
                node = _read_node(reader, f, 1)
                if not node.name or not _OP_NAME.match(node.op):
                    return False
                first_node = True
            elif f.number not in GRAPH_FIELDS:
                unknown += 1
                if unknown > MAX_UNKNOWN_FIELDS:
                    return False
            elif GRAPH_FIELDS[f.number] != f.wire_type:
                return False
    except ProtobufError:
        return first_node
    return first_node


@dataclass
class _Node:
    name: str = ""
    op: str = ""
    attrs: list[WireField] = field(default_factory=list)
    inputs: list[WireField] = field(default_factory=list)  # the first MAX_KEPT_INPUTS, decoded on demand


def _read_node(reader: WireReader, node: WireField, depth: int) -> _Node:
    out = _Node()
    for f in reader.message(node, depth):
        expected = NODE_FIELDS.get(f.number)
        if expected is not None and expected != f.wire_type:
            raise ProtobufError(f"NodeDef field {f.number} has wire type {f.wire_type}", f.offset)
        if f.number == 1:
            out.name = reader.text(f, MAX_NAME)
        elif f.number == 2:
            out.op = reader.text(f, MAX_NAME)
        elif f.number == 3 and len(out.inputs) < MAX_KEPT_INPUTS:
            out.inputs.append(f)
        elif f.number == 5:
            out.attrs.append(f)
    return out


@dataclass
class _Walk:
    blob: Blob
    reader: WireReader
    functions: set[str] = field(default_factory=set)
    events: list[ScanEvent] = field(default_factory=list)
    seen: dict[tuple[str, str], int] = field(default_factory=dict)
    reported: dict[str, int] = field(default_factory=dict)
    allowed: frozenset[str] = frozenset()
    denied: frozenset[str] = frozenset()
    asset_tensors: set[str] = field(default_factory=set)


@dataclass
class _Scope:
    """The nodes of one graph or function that a table's filename can come from."""

    label: str
    arguments: frozenset[str] = frozenset()
    sources: dict[str, tuple[_Node, WireField]] = field(default_factory=dict)
    table_inits: list[tuple[_Node, WireField]] = field(default_factory=list)

    def add(self, node: _Node, field_: WireField) -> None:
        if node.op in _FILENAME_SOURCES:
            self.sources[node.name] = (node, field_)
        elif node.op in TABLE_FILE_OPS:
            self.table_inits.append((node, field_))


def scan(blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]:
    reader = WireReader(blob, max_depth=ctx.limits.max_protobuf_depth, tick=ctx.check_time)
    walk = _Walk(
        blob, reader, allowed=ctx.policy.allowed_tensorflow_ops, denied=ctx.policy.denied_tensorflow_ops
    )
    try:
        graphs = _graphs(reader, saved_model=blob.head(1) == b"\x08")
        if blob.head(1) == b"\x08":
            _check_assets(walk)
        for graph, depth, _ in graphs:
            _collect_functions(walk, graph, depth)
        for graph, depth, label in graphs:
            _walk_graph(walk, graph, depth, label)
    except ProtobufError as exc:
        where = Location(blob.chain, offset=exc.offset)
        walk.events.append(rules.MALFORMED.at(where, f"the TensorFlow protobuf cannot be read: {exc.reason}"))
        walk.events.append(
            ScanIssue("partial", "the graph could not be read to its end; the rest was not analysed", where)
        )
    yield from walk.events


def _graphs(reader: WireReader, *, saved_model: bool) -> list[tuple[WireField, int, str]]:
    """The GraphDefs to walk: the file itself, or each meta graph's graph_def."""
    if not saved_model:
        whole = WireField(0, LEN, 0, 0, reader.size)
        return [(whole, 0, "graph")]
    graphs: list[tuple[WireField, int, str]] = []
    meta_index = 0
    for f in reader.fields(0, reader.size):
        if f.number != 2 or f.wire_type != LEN:
            continue
        graphs.extend(
            (g, 2, f"meta graph #{meta_index}")
            for g in reader.message(f, 1)
            if g.number == 2 and g.wire_type == LEN
        )
        meta_index += 1
    return graphs


def _check_assets(walk: _Walk) -> None:
    """AssetFileDefs of each meta graph: their tensors are where the loader feeds asset paths, and a
    filename that escapes the SavedModel's assets folder is reported."""
    r = walk.reader
    for meta_index, f in enumerate(m for m in r.fields(0, r.size) if m.number == 2 and m.wire_type == LEN):
        for asset, depth in _asset_file_defs(r, f):
            for a in r.message(asset, depth):
                if a.number == 1 and a.wire_type == LEN:
                    walk.asset_tensors.update(
                        r.text(t, MAX_NAME)
                        for t in r.message(a, depth + 1)
                        if t.number == 1 and t.wire_type == LEN
                    )
                if a.number == 2 and a.wire_type == LEN:
                    filename = r.text(a, 4096)
                    problem = _asset_problem(filename)
                    if problem is not None:
                        walk.events.append(
                            rules.ASSET_PATH.at(
                                Location(walk.blob.chain, offset=asset.offset, detail=filename),
                                f"asset {filename!r} of meta graph #{meta_index} is {problem}",
                                evidence=filename,
                            )
                        )


def _asset_file_defs(reader: WireReader, meta_graph: WireField) -> Iterator[tuple[WireField, int]]:
    """MetaGraphDef.asset_file_def (TF2 and recent TF1), and the AssetFileDefs that TF1's
    SavedModelBuilder packs as Any values in the 'saved_model_assets' collection: the loader feeds both."""
    for f in reader.message(meta_graph, 1):
        if f.number == 6 and f.wire_type == LEN:
            yield f, 2
        elif f.number == 4 and f.wire_type == LEN:
            key, value = _map_entry(reader, f, 2)
            if key != ASSETS_COLLECTION or value is None:
                continue
            for any_list in reader.message(value, 3):
                if any_list.number != 5 or any_list.wire_type != LEN:
                    continue
                for packed in reader.message(any_list, 4):
                    if packed.number == 1 and packed.wire_type == LEN:
                        yield from (
                            (v, 6) for v in reader.message(packed, 5) if v.number == 2 and v.wire_type == LEN
                        )


def _asset_problem(filename: str) -> str | None:
    unified = filename.replace("\\", "/")
    if unified.startswith("/") or _WINDOWS_DRIVE.match(unified):
        return "an absolute path"
    if ".." in unified.split("/"):
        return "a path that climbs out of the assets folder with '..'"
    return None


def _library_functions(reader: WireReader, graph: WireField, depth: int) -> Iterator[tuple[WireField, int]]:
    for f in reader.message(graph, depth):
        if f.number == GRAPH_LIBRARY and f.wire_type == LEN:
            for fn in reader.message(f, depth + 1):
                if fn.number == 1 and fn.wire_type == LEN:
                    yield fn, depth + 2


def _function_name(reader: WireReader, fn: WireField, depth: int) -> str:
    for f in reader.message(fn, depth):
        if f.number == 1 and f.wire_type == LEN:
            for s in reader.message(f, depth + 1):
                if s.number == 1 and s.wire_type == LEN:
                    return reader.text(s, MAX_NAME)
    return ""


def _collect_functions(walk: _Walk, graph: WireField, depth: int) -> None:
    for fn, fn_depth in _library_functions(walk.reader, graph, depth):
        walk.functions.add(_function_name(walk.reader, fn, fn_depth))


def _walk_graph(walk: _Walk, graph: WireField, depth: int, label: str) -> None:
    r = walk.reader
    scope = _Scope(f"{label}")
    for f in r.message(graph, depth):
        if f.number == 1:
            if f.wire_type != LEN:
                raise ProtobufError("GraphDef node is not a message", f.offset)
            node = _read_node(r, f, depth + 1)
            _judge(walk, f, node, label)
            scope.add(node, f)
    _check_table_files(walk, scope)
    for fn, fn_depth in _library_functions(r, graph, depth):
        fn_label = f"{label} › function {_function_name(r, fn, fn_depth)!r}"
        scope = _Scope(fn_label, _argument_names(r, fn, fn_depth))
        for f in r.message(fn, fn_depth):
            if f.number == 3 and f.wire_type == LEN:
                node = _read_node(r, f, fn_depth + 1)
                _judge(walk, f, node, fn_label)
                scope.add(node, f)
        _check_table_files(walk, scope)


def _argument_names(reader: WireReader, fn: WireField, depth: int) -> frozenset[str]:
    """FunctionDef.signature.input_arg[].name."""
    names: set[str] = set()
    for f in reader.message(fn, depth):
        if f.number == 1 and f.wire_type == LEN:
            for arg in reader.message(f, depth + 1):
                if arg.number == 2 and arg.wire_type == LEN:
                    names.update(
                        reader.text(a, MAX_NAME)
                        for a in reader.message(arg, depth + 2)
                        if a.number == 1 and a.wire_type == LEN
                    )
    return frozenset(names)


def _check_table_files(walk: _Walk, scope: _Scope) -> None:
    """A lookup table initialised from a file whose name the graph itself spells (a constant or a
    computed string) reads that host file when the model loads; an asset or an argument is fine."""
    for node, field_ in scope.table_inits:
        if len(node.inputs) < 2:
            continue
        problem = _filename_problem(walk, scope, walk.reader.text(node.inputs[1], MAX_NAME))
        if problem is None:
            continue
        detail = node.name or f"{node.op} node at byte {field_.offset}"
        walk.events.append(
            rules.FILE_ACCESS.at(
                Location(walk.blob.chain, offset=field_.offset, detail=detail),
                f"node {detail!r} ({scope.label}) runs op {node.op!r}, which reads the host file {problem}",
                evidence=node.op,
            )
        )


def _filename_problem(walk: _Walk, scope: _Scope, source: str) -> str | None:
    for _ in range(MAX_IDENTITY_HOPS):
        name = source.lstrip("^").split(":")[0]
        if name in scope.arguments:
            return None
        found = scope.sources.get(name)
        if found is None:
            return f"named by {name!r}, computed inside the graph rather than a SavedModel asset"
        node, field_ = found
        if node.op in _FED or f"{name}:0" in walk.asset_tensors:
            return None
        if node.op == "Const":
            spelled = _const_text(walk, node) or name
            return f"{spelled!r}, a constant of the graph rather than a SavedModel asset"
        if not node.inputs:
            return f"named by {name!r}, which has no input"
        source = walk.reader.text(node.inputs[0], MAX_NAME)
    return f"named through more than {MAX_IDENTITY_HOPS} Identity nodes"


def _const_text(walk: _Walk, node: _Node) -> str | None:
    """The first string of a Const node's value (AttrValue.tensor → TensorProto.string_val)."""
    value = _attr(walk.reader, node, "value")
    if value is None:
        return None
    for v in walk.reader.message(value, 0):
        if v.number == 8 and v.wire_type == LEN:
            for t in walk.reader.message(v, 0):
                if t.number == 8 and t.wire_type == LEN:
                    return walk.reader.text(t, 4096)
    return None


def _attr(reader: WireReader, node: _Node, wanted: str) -> WireField | None:
    """The AttrValue of a NodeDef attr map entry, by key."""
    for entry in node.attrs:
        key, value = _map_entry(reader, entry, 0)
        if key == wanted and value is not None:
            return value
    return None


def _map_entry(reader: WireReader, entry: WireField, depth: int) -> tuple[str, WireField | None]:
    """A protobuf map<string, message> entry: its key and its value message."""
    key, value = "", None
    for f in reader.message(entry, depth):
        if f.number == 1 and f.wire_type == LEN:
            key = reader.text(f, MAX_NAME)
        elif f.number == 2 and f.wire_type == LEN:
            value = f
    return key, value


def _judge(walk: _Walk, field_: WireField, node: _Node, label: str) -> None:
    op = node.op
    denied_by_policy = op in walk.denied
    if not denied_by_policy and (
        op in walk.functions or op in ORDINARY_OPS and not _prints_to_file(walk, node)
    ):
        return
    rule: Rule
    severity: Severity | None = None
    if op in PYTHON_OPS:
        rule, why = rules.PYTHON_CALL, PYTHON_OPS[op]
    elif op in FILE_OPS or op == "PrintV2":
        rule, why = rules.FILE_ACCESS, FILE_OPS.get(op, "prints tensors into a file named in its attributes")
    elif op in NETWORK_OPS:
        rule, why = rules.NETWORK_OP, NETWORK_OPS[op]
    elif op in DEBUG_OPS:
        rule, why = rules.DEBUG_OP, DEBUG_OPS[op]
    elif denied_by_policy:
        rule, why, severity = rules.UNKNOWN_OP, "the policy denies ([tensorflow_ops] deny)", Severity.HIGH
    elif op in walk.allowed:
        return  # reviewed and allowed by the policy; the shipped denylist above still wins
    else:
        rule, why = rules.UNKNOWN_OP, "is not an ordinary TensorFlow op nor a function of the graph's library"
    key = (rule.id, op)
    walk.seen[key] = walk.seen.get(key, 0) + 1
    if walk.seen[key] > 1:
        return  # one finding per op and rule: a hostile graph repeats its op thousands of times
    walk.reported[rule.id] = walk.reported.get(rule.id, 0) + 1
    if walk.reported[rule.id] > MAX_FINDINGS_PER_RULE:
        return
    detail = node.name or f"{op} node at byte {field_.offset}"
    walk.events.append(
        rule.at(
            Location(walk.blob.chain, offset=field_.offset, detail=detail),
            f"node {detail!r} ({label}) runs op {op!r}, which {why}",
            evidence=op,
            severity=severity,
        )
    )


def _prints_to_file(walk: _Walk, node: _Node) -> bool:
    """PrintV2 writes to a file when its output_stream attribute is a file:// URL."""
    if node.op != "PrintV2":
        return False
    value = _attr(walk.reader, node, "output_stream")
    if value is None:
        return False
    for v in walk.reader.message(value, 0):
        if v.number == 2 and v.wire_type == LEN:
            return walk.reader.text(v, MAX_NAME).startswith("file://")
    return False
