package infer

import (
	"mqa/checkpoints"
	"path/filepath"

	"mqa/models"
)

// Save writes the model into dir (created if needed) so that Load reads it back:
// config.json, model.safetensors, tokenizer.json, and src_tokenizer.json when the source
// tokenizer is not the target's (a nil SrcTok is the target's).
func (m *Model) Save(dir string) error {
	if err := models.SaveModel(dir, m.Cfg, m.Params); err != nil {
		return err
	}
	if err := m.Tok.Save(filepath.Join(dir, checkpoints.TokenizerFile)); err != nil {
		return err
	}
	if m.SrcTok != nil && m.SrcTok != m.Tok {
		return m.SrcTok.Save(filepath.Join(dir, checkpoints.SrcTokenizerFile))
	}
	return nil
}
