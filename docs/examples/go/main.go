// A Looper decision from Go: POST /v1/decisions, act on it, then POST /v1/observations.
// Run: LOOPER_API_TOKENS=s3cret looper serve, then LOOPER_TOKEN=s3cret go run main.go
// (LOOPER_URL: the server, default http://127.0.0.1:8780).
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
)

func post(path string, body, out any) {
	base := os.Getenv("LOOPER_URL")
	if base == "" {
		base = "http://127.0.0.1:8780"
	}
	data, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", base+path, bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+os.Getenv("LOOPER_TOKEN"))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		defer resp.Body.Close()
		if resp.StatusCode >= 300 {
			err = fmt.Errorf("%s: %s", path, resp.Status)
		} else {
			err = json.NewDecoder(resp.Body).Decode(out)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func main() {
	var d struct {
		DecisionID string `json:"decision_id"`
		Action     string
		Propensity float64
		IsDefault  bool `json:"is_default"`
	}
	post("/v1/decisions", map[string]any{"blueprint": "notification_send", "unit_id": "user-42",
		"features": map[string]any{"days_since_last_visit": 3.5, "sessions_last_7d": 2,
			"push_opt_in": true, "country": "us", "platform": "ios"}}, &d)
	fmt.Printf("%s: %s (p=%.2f, default=%v)\n", d.DecisionID, d.Action, d.Propensity, d.IsDefault)
	var ack struct{ Accepted int }
	post("/v1/observations", map[string]any{"decision_id": d.DecisionID, "observations": map[string]any{"click": 1}}, &ack)
	fmt.Println("observations accepted:", ack.Accepted)
}
