package natsx_test

import (
	"context"
	"testing"

	"github.com/vrsky/vrsky/platform/natsx"
	"github.com/vrsky/vrsky/platform/natsx/natsxtest"
)

// TestConnectReplicasFollowTheCluster: without Options.Replicas, a
// connection to an external cluster asks for as many replicas as the
// cluster has servers (at most 3), so that losing one server loses no
// stream; a single server outside a cluster gets 1; a set value wins.
// (vrsky serve --nats-url used to make R1 streams on a 3-node cluster: the
// streams and leases on a stopped server were gone with it.)
func TestConnectReplicasFollowTheCluster(t *testing.T) {
	cluster := natsxtest.StartCluster(t, 3)
	single, err := natsx.Connect(context.Background(), natsx.Options{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Name: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(single.Close)
	for _, tc := range []struct {
		name, url, keys string
		set, want       int
	}{
		{"3-node cluster, every URL", cluster.URL(), cluster.KeysFile, 0, 3},
		{"3-node cluster, one URL (the others advertised)", cluster.Servers[1].ClientURL(), cluster.KeysFile, 0, 3},
		{"3-node cluster, set to 2", cluster.URL(), cluster.KeysFile, 2, 2},
		{"one server", single.ClientURL(), single.KeysPath(), 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := natsx.Connect(context.Background(), natsx.Options{URL: tc.url, KeysFile: tc.keys, Replicas: tc.set, Name: t.Name()})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.Replicas != tc.want {
				t.Fatalf("Replicas = %d, want %d", c.Replicas, tc.want)
			}
			d, err := c.Dial(context.Background(), "second")
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if d.Replicas != tc.want {
				t.Fatalf("a connection Dial opens has Replicas %d, want %d", d.Replicas, tc.want)
			}
		})
	}
}
