package main

import (
	"testing"

	"supportbridge/bridge/redisstore/redistest"
)

// The replica scenarios of replicas_test.go on a 3-master Redis Cluster
// started locally: redis.addrs lists its nodes, so the replicas use a
// cluster client, and every multi-key command or script must stay in one
// slot (the logs are searched for CROSSSLOT).

func TestClusterReplicas(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	rpWorkShared(t, c.Addrs)
}

func TestClusterDigestScheduler(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3)
	rpDigestHandOver(t, c.Addrs)
}
