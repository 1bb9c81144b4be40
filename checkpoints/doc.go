// Package checkpoints reads and writes model and optimizer state on disk.
//
// It provides three building blocks:
//
//   - safetensors files (WriteSafetensors, SaveSafetensors, ReadSafetensors,
//     ReadSafetensorsHeader, ParseSafetensors): the standard tensor
//     container, written deterministically and read with strict validation
//     of every header field before any tensor data is allocated;
//   - strict JSON files (ReadJSON, WriteJSON) for configs and training state;
//   - crash-safe checkpoint directories (WriteDirAtomic, IsComplete, Manager,
//     Resolve): a checkpoint directory appears under its final name only
//     when all of its files are written and synced, and it is complete iff
//     it holds a COMPLETE marker file written last; pruning renames a
//     checkpoint out of sight before deleting its files, and Clean removes
//     what an interrupted run left;
//   - LockRun: one writer per run directory (flock on its mqa.lock file).
//
// Every file written by this package is written to a temporary file in the
// same directory, synced, renamed into place, and the directory is synced,
// so a crash leaves either the old or the new content, never a mix.
//
// Files read by this package are treated as untrusted: errors name the file
// (and, for safetensors, the tensor) that was rejected, and only regular
// files are opened (OpenRegular), so a FIFO in a file's place cannot hang
// a reader.
package checkpoints
