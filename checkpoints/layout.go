package checkpoints

// The files of a run directory and of each checkpoint directory in it. A run directory
// holds LogFile and the step-* checkpoint directories that Manager keeps; a checkpoint
// directory holds the other files, CompleteFile written last.
const (
	// ConfigFile is the model configuration (JSON).
	ConfigFile = "config.json"
	// WeightsFile is the model's parameters by name (safetensors, float32).
	WeightsFile = "model.safetensors"
	// TokenizerFile is the (target) tokenizer.
	TokenizerFile = "tokenizer.json"
	// SrcTokenizerFile is a translation model's source tokenizer, present only when the
	// source and target vocabularies are separate.
	SrcTokenizerFile = "src_tokenizer.json"
	// OptimizerFile is the optimizer's moments (safetensors).
	OptimizerFile = "optimizer.safetensors"
	// StateFile is the training state needed to continue exactly (JSON).
	StateFile = "state.json"
	// RunFile is the data settings the run was trained with (JSON).
	RunFile = "run.json"
	// CompleteFile is the marker that WriteDirAtomic writes last into every checkpoint
	// directory. A directory is a complete checkpoint iff it contains a valid CompleteFile.
	CompleteFile = "COMPLETE"
	// LogFile is the training log of a run directory (JSON lines).
	LogFile = "train.jsonl"
)
