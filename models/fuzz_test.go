package models

import (
	"encoding/json"
	"testing"
)

// FuzzParseConfig feeds arbitrary bytes to the strict config loader: it must never panic,
// and whatever it accepts must be a valid config that survives a JSON round trip.
func FuzzParseConfig(f *testing.F) {
	good, _ := json.Marshal(handMT)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte(`{"task":"lm","vocab":1e300}`))
	f.Add([]byte(`{"task":"lm","vocab":-1,"heads":4,"kv_heads":0}`))
	f.Add([]byte(`{"task":"translate","dropout":"x"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b, "fuzz.json")
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted an invalid config: %v", err)
		}
		again, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		c2, err := ParseConfig(again, "again.json")
		if err != nil || c2 != c {
			t.Fatalf("round trip: %v %+v", err, c2)
		}
	})
}
