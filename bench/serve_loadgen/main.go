// Open-loop HTTP load generator for bench/serve_decisions.py: requests are sent on a
// fixed schedule (rate per second) whatever the server's answers, and each latency is
// measured from the request's scheduled time, so a stall shows as latency instead of
// as fewer requests (no coordinated omission). Prints one JSON line of results.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"
)

func main() {
	url := flag.String("url", "", "endpoint to POST to")
	token := flag.String("token", "", "bearer token")
	bodyFile := flag.String("body", "", "file with the JSON body")
	rate := flag.Int("rate", 1000, "requests per second")
	seconds := flag.Float64("seconds", 10, "how long to send")
	warmup := flag.Float64("warmup", 2, "seconds sent first and not counted")
	flag.Parse()
	body, err := os.ReadFile(*bodyFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	interval := time.Second / time.Duration(*rate)
	total := int((*seconds + *warmup) * float64(*rate))
	skip := int(*warmup * float64(*rate))
	lat := make([]float64, total)
	status := make([]int, total)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < total; i++ {
		due := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(due))
		wg.Add(1)
		go func(i int, due time.Time) {
			defer wg.Done()
			req, _ := http.NewRequest("POST", *url, bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+*token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				status[i] = -1 // transport error or the client's 5 s timeout
			} else {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				status[i] = resp.StatusCode
			}
			lat[i] = float64(time.Since(due).Microseconds()) / 1000.0
		}(i, due)
	}
	sendEnd := time.Now()
	wg.Wait()
	counted, errors, byStatus := []float64{}, 0, map[string]int{}
	for i := skip; i < total; i++ {
		if status[i] != 200 {
			errors++
			byStatus[fmt.Sprint(status[i])]++
			continue
		}
		counted = append(counted, lat[i])
	}
	sort.Float64s(counted)
	pct := func(q float64) float64 {
		if len(counted) == 0 {
			return -1
		}
		k := int(q/100*float64(len(counted))+0.5) - 1
		if k < 0 {
			k = 0
		}
		if k >= len(counted) {
			k = len(counted) - 1
		}
		return counted[k]
	}
	sent := sendEnd.Sub(start.Add(time.Duration(skip) * interval)).Seconds()
	out := map[string]any{
		"sent_total": total, "requests": total - skip, "ok": len(counted), "errors": errors, "errors_by_status": byStatus,
		"offered_rps": float64(*rate), "achieved_rps": float64(len(counted)) / sent,
		"p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99), "p999_ms": pct(99.9), "max_ms": pct(100),
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
