package main

import (
	"strings"
	"testing"
)

// TestInitramfsBakesTheMetricsAddress: --metrics becomes nowhere.metrics= in the baked
// defaults, validated by the boot's own parser, so a bad address fails here and not at boot.
func TestInitramfsBakesTheMetricsAddress(t *testing.T) {
	got, err := bakedDefaults(initramfsOptions{image: "http://10.0.2.100/images/debian", metrics: "127.0.0.1:9100"})
	if err != nil || got != "nowhere.image=http://10.0.2.100/images/debian nowhere.metrics=127.0.0.1:9100" {
		t.Errorf("baked %q, %v", got, err)
	}
	if _, err := bakedDefaults(initramfsOptions{metrics: "localhost:9100"}); err == nil || !strings.Contains(err.Error(), "nowhere.metrics") {
		t.Errorf("a host name: %v, want a refusal naming nowhere.metrics", err)
	}
}
