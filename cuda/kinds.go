package cuda

// The kinds of node the executor runs, and the pure-Go half of each kind's lowering record:
// its name, the op type it lowers and the scratch it needs while it runs. The GPU half (the
// kernels and the launch) is the kind's lowering in the lower_*.go file of its family. Pure Go
// (no build tag), so that the plan and the memory planner are checked in CI without a GPU.

import (
	"reflect"

	G "gorgonia.org/gorgonia"

	"mqa/layers/ops"
)

// Kind is what the executor does for a node.
type Kind int

// Node kinds.
const (
	KParam         Kind = iota // a model parameter (persistent device buffer)
	KConst                     // a float constant (uploaded once)
	KIntConst                  // an int input fixed when the graph is built (positions)
	KIntFed                    // an int input fed per batch (tokens, targets, source, lengths)
	KReshape                   // an alias of its input's buffer
	KMatMul                    // 2-D product, cuBLAS
	KBatchedMatMul             // 3-D batched product, one strided-batched cuBLAS call
	KAdd                       // elementwise sum of two same-shaped tensors
	KPermute
	KSoftmax
	KSoftmaxGrad
	KNorm
	KNormGrad
	KActivation
	KActivationGrad
	KGather
	KScatterAdd
	KBiasAdd
	KColSum
	KCrossEntropy
	KCrossEntropyGrad
	KDropout
	KRoPE
	KFloatFed        // a float input bound to a buffer the caller owns (K/V cache, cross-attention memory)
	KDecodeAttention // ops.DecodeAttention: the fused decode-attention kernel (kernels/decode.cu)
)

// kindSpec is the pure-Go half of a kind's lowering record.
type kindSpec struct {
	name string
	// op is a value of the op type (from layers/ops) that this kind lowers; nil for graph
	// inputs and for Gorgonia's own ops, which classifyBuiltin recognises.
	op G.Op
	// refine completes the classification of a node of this kind (nil: nothing to add).
	refine func(pn *PlanNode, p *Plan) error
	// scratch is the bytes of activation memory the node needs while it runs (nil: none).
	scratch func(pn *PlanNode, nodes []PlanNode) int64
}

var kindSpecs = [...]kindSpec{
	KParam:            {name: "param"},
	KConst:            {name: "const"},
	KIntConst:         {name: "int-const"},
	KIntFed:           {name: "int-fed"},
	KReshape:          {name: "reshape"},
	KMatMul:           {name: "matmul"},
	KBatchedMatMul:    {name: "batched-matmul"},
	KAdd:              {name: "add"},
	KPermute:          {name: "permute", op: ops.Permute{}, refine: refinePermute},
	KSoftmax:          {name: "softmax", op: ops.Softmax{}},
	KSoftmaxGrad:      {name: "softmax-grad", op: ops.SoftmaxGrad{}},
	KNorm:             {name: "norm", op: ops.Norm{}},
	KNormGrad:         {name: "norm-grad", op: ops.NormGrad{}, scratch: normGradScratch},
	KActivation:       {name: "activation", op: ops.Activation{}},
	KActivationGrad:   {name: "activation-grad", op: ops.ActivationGrad{}},
	KGather:           {name: "gather", op: ops.Gather{}},
	KScatterAdd:       {name: "scatter-add", op: ops.ScatterAdd{}},
	KBiasAdd:          {name: "bias-add", op: ops.BiasAdd{}},
	KColSum:           {name: "col-sum", op: ops.ColSum{}},
	KCrossEntropy:     {name: "cross-entropy", op: ops.CrossEntropy{}, scratch: crossEntropyScratch},
	KCrossEntropyGrad: {name: "cross-entropy-grad", op: ops.CrossEntropyGrad{}, scratch: crossEntropyGradScratch},
	KDropout:          {name: "dropout", op: ops.Dropout{}},
	KRoPE:             {name: "rope", op: ops.RoPE{}},
	KFloatFed:         {name: "float-fed"},
	KDecodeAttention:  {name: "decode-attention", op: ops.DecodeAttention{}, refine: refineDecodeAttention, scratch: decodeAttentionScratch},
}

func (k Kind) String() string { return kindSpecs[k].name }

// opKinds maps each op type of layers/ops that the executor runs to its kind.
var opKinds = func() map[reflect.Type]Kind {
	m := map[reflect.Type]Kind{}
	for k, s := range kindSpecs {
		if s.op != nil {
			m[reflect.TypeOf(s.op)] = Kind(k)
		}
	}
	return m
}()

// auxBytes is the scratch a node needs while it runs.
func auxBytes(pn *PlanNode, nodes []PlanNode) int64 {
	if f := kindSpecs[pn.Kind].scratch; f != nil {
		return f(pn, nodes)
	}
	return 0
}

// crossEntropyScratch holds the per-row losses (kept to the end of the run for TokenNLL).
func crossEntropyScratch(pn *PlanNode, nodes []PlanNode) int64 {
	return 4 * int64(nodes[pn.In[0]].Shape[0])
}

// crossEntropyGradScratch holds the count of rows that are not padding.
func crossEntropyGradScratch(*PlanNode, []PlanNode) int64 { return 4 }

// normGradScratch holds the rows' mean and 1/σ for the gamma sums.
func normGradScratch(pn *PlanNode, nodes []PlanNode) int64 {
	if pn.Node.Op().(ops.NormGrad).Wrt == 1 {
		return 8 * int64(nodes[pn.In[0]].Shape[0])
	}
	return 0
}

// decodeAttentionScratch holds a split decode attention's partial results.
func decodeAttentionScratch(pn *PlanNode, _ []PlanNode) int64 {
	if pn.Splits <= 1 {
		return 0
	}
	op := pn.Node.Op().(ops.DecodeAttention)
	rows := int64(pn.Shape[0])
	return 4 * rows * int64(op.Heads) * int64(pn.Splits) * int64(op.HeadDim+2)
}
