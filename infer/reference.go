package infer

import (
	"fmt"

	"mqa/data"
)

// Reference is a model's result on one prompt, to check an export of it in another
// runtime: the prompt's token ids, the logits after each of them ([len(IDs)][vocab]), and
// the greedy continuation (mqa generate's tokens, without EOS).
type Reference struct {
	Text   string      `json:"text"`
	IDs    []int       `json:"ids"`
	Logits [][]float32 `json:"logits"`
	Greedy []int       `json:"greedy"`
}

// References runs an LM on each non-empty line with the cached CPU decoder, the one mqa
// generate uses, continuing each by at most maxNew tokens. A prompt that leaves no room
// for a new token is an error naming source (the file of the lines) and its line number.
func References(m *Model, source string, lines []string, maxNew int) ([]Reference, error) {
	cpu, err := NewCPU(m.Cfg, m.Params, false)
	if err != nil {
		return nil, err
	}
	var refs []Reference
	for i, line := range lines {
		if line == "" {
			continue
		}
		r := Reference{Text: line, IDs: m.Tok.Encode(line)}
		capacity := min(m.Cfg.MaxLen, len(r.IDs)+maxNew)
		if len(r.IDs) >= capacity {
			return nil, fmt.Errorf("%s:%d: the prompt has %d tokens, the model takes %d", source, i+1, len(r.IDs), m.Cfg.MaxLen)
		}
		s, err := cpu.LM(1, capacity)
		if err != nil {
			return nil, err
		}
		for _, id := range r.IDs {
			logits, err := s.Step([]int{id})
			if err != nil {
				return nil, err
			}
			r.Logits = append(r.Logits, logits)
		}
		if s, err = cpu.LM(1, capacity); err != nil {
			return nil, err
		}
		out, err := Generate(s, [][]int{r.IDs}, maxNew, data.EOSID, Sampling{})
		if err != nil {
			return nil, err
		}
		r.Greedy = append([]int{}, out[0]...)
		refs = append(refs, r)
	}
	return refs, nil
}
