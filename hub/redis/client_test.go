package redis

import (
	"slices"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

func TestNewRedisClient(t *testing.T) {
	for _, tc := range []struct {
		url     string
		kind    string // "client", "cluster", "failover" or "error"
		addrs   []string
		master  string
		db      int
		timeout time.Duration
	}{
		{url: "redis://localhost:6379/0", kind: "client", addrs: []string{"localhost:6379"}, timeout: 2 * time.Second},
		{url: "redis://:pw@10.0.0.1:7000/3?read_timeout=5s", kind: "client", addrs: []string{"10.0.0.1:7000"}, db: 3, timeout: 5 * time.Second},
		{url: "redis://a:7000,b:7001,c", kind: "cluster", addrs: []string{"a:7000", "b:7001", "c:6379"}, timeout: 2 * time.Second},
		{url: "redis://u:p@s1:26379,s2:26379/2?master_name=mymaster", kind: "failover", addrs: []string{"s1:26379", "s2:26379"}, master: "mymaster", db: 2, timeout: 2 * time.Second},
		{url: "redis://a:1,b:2?read_timeout=750ms", kind: "cluster", addrs: []string{"a:1", "b:2"}, timeout: 750 * time.Millisecond},
		{url: "http://localhost", kind: "error"},
		{url: "redis://a:1,b:2?bogus=1", kind: "error"},
		{url: "redis://a:1,b:2/5", kind: "error"}, // a Cluster has only database 0
		{url: "memcached://a:1,b:2", kind: "error"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			c, err := NewClient(tc.url)
			if tc.kind == "error" {
				if err == nil {
					_ = c.Close()
					t.Fatal("got a client, want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			switch c := c.(type) {
			case *goredis.ClusterClient:
				o := c.Options()
				if tc.kind != "cluster" || !slices.Equal(o.Addrs, tc.addrs) || o.ReadTimeout != tc.timeout {
					t.Errorf("got cluster %v read timeout %s, want %s %v %s", o.Addrs, o.ReadTimeout, tc.kind, tc.addrs, tc.timeout)
				}
			case *goredis.Client:
				o := c.Options()
				if tc.kind == "client" && (o.Addr != tc.addrs[0] || o.DB != tc.db || o.ReadTimeout != tc.timeout || o.DialTimeout != 2*time.Second) {
					t.Errorf("got client %s db %d read timeout %s, want %v db %d %s", o.Addr, o.DB, o.ReadTimeout, tc.addrs, tc.db, tc.timeout)
				}
				if tc.kind == "failover" && o.DB != tc.db {
					t.Errorf("got failover client db %d, want %d", o.DB, tc.db)
				}
			default:
				t.Errorf("got %T, want %s", c, tc.kind)
			}
		})
	}
	opt, err := parseList("redis://u:p@s1:26379,s2:26379/2?master_name=mymaster")
	if err != nil || opt.MasterName != "mymaster" || opt.Username != "u" || opt.Password != "p" || !slices.Equal(opt.Addrs, []string{"s1:26379", "s2:26379"}) {
		t.Errorf("sentinel list: got %+v, %v", opt, err)
	}
}
