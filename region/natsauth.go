package region

import (
	"slices"

	"github.com/nats-io/nats-server/v2/server"

	"shortener/replicator"
	"shortener/secrets"
)

// jsRead is the JetStream API that reading the log needs: stream and
// consumer information, direct and stored-message gets, and consumers to
// read through (an ordered consumer is an ephemeral one). A consumer can be
// created on any stream: the API cannot tell a create from an update by
// subject, so a reader could re-configure a consumer, never a stream or a
// message (docs/security.md).
var jsRead = []string{
	"$JS.API.INFO",
	"$JS.API.STREAM.INFO.*", "$JS.API.STREAM.NAMES", "$JS.API.STREAM.LIST",
	"$JS.API.STREAM.MSG.GET.*", "$JS.API.DIRECT.GET.>",
	"$JS.API.CONSUMER.CREATE.>", "$JS.API.CONSUMER.DURABLE.CREATE.>",
	"$JS.API.CONSUMER.INFO.>", "$JS.API.CONSUMER.MSG.NEXT.>",
	"$JS.API.CONSUMER.NAMES.>", "$JS.API.CONSUMER.LIST.>",
}

// regionStreams are the streams a region creates and consumes: its own
// event and click streams and its mirrors of every other region's.
func regionStreams(region string, all []string) []string {
	out := []string{replicator.StreamName(region), replicator.ClickStreamName(region)}
	for _, o := range all {
		if o != region {
			out = append(out, replicator.MirrorName(o, region), replicator.ClickMirrorName(o, region))
		}
	}
	return out
}

// benchStreams are the benchmarks' scratch streams (package bench).
var benchStreams = []string{"BENCH_RAW", "BENCH_ORIGIN", "BENCH_MIRROR"}

// permissions are what a user of role may do. A region's application
// publishes only to its own subjects, creates only its own streams (and the
// alias bucket), deletes only its own consumers and acknowledges only on its
// own streams, and may delete its own mirrors of the other regions' logs
// (replicator.EnsureMirror makes one again that cannot resume); no user may
// delete a log stream or another region's mirror, purge, update, snapshot
// into or restore over a stream, or delete a message. Every user subscribes only to its
// inboxes, where JetStream answers.
func permissions(u secrets.User, all []string) *server.Permissions {
	pub := slices.Clone(jsRead)
	switch u.Role {
	case secrets.RoleRegion:
		pub = append(pub, "links."+u.Region+".>", replicator.ClickSubject(u.Region),
			"$KV."+replicator.AliasBucket+".>",
			"$JS.API.STREAM.CREATE.KV_"+replicator.AliasBucket)
		for _, s := range regionStreams(u.Region, all) {
			pub = append(pub, "$JS.API.STREAM.CREATE."+s, "$JS.API.CONSUMER.DELETE."+s+".>", "$JS.ACK."+s+".>")
		}
		// A mirror that lost what its source consumer says it holds is
		// made again (replicator.EnsureMirror): a copy, never the log.
		for _, o := range all {
			if o != u.Region {
				pub = append(pub, "$JS.API.STREAM.DELETE."+replicator.MirrorName(o, u.Region))
			}
		}
	case secrets.RoleBackup:
		// A snapshot is a read: the server streams the stream's files to
		// the tool's inbox, which acknowledges each chunk on its own
		// subject.
		pub = append(pub, "$JS.API.STREAM.SNAPSHOT.*", "$JS.SNAPSHOT.ACK.>")
	case secrets.RoleRestore:
		// A restore creates a stream from a snapshot, chunk by chunk on
		// the subject the server names; it refuses a stream that exists.
		pub = append(pub, "$JS.API.STREAM.RESTORE.*", "$JS.SNAPSHOT.RESTORE.>")
	case secrets.RoleSwitch:
		// Its bucket only, not the log: read, compare-and-set the one
		// state, and the watch's ordered push consumer with its flow
		// control.
		kv := "KV_" + replicator.SwitchBucket
		pub = []string{"$JS.API.INFO", "$JS.API.STREAM.INFO." + kv, "$JS.API.STREAM.MSG.GET." + kv, "$JS.API.DIRECT.GET." + kv + ".>",
			"$JS.API.CONSUMER.CREATE." + kv + ".>", "$JS.API.CONSUMER.INFO." + kv + ".>",
			"$KV." + replicator.SwitchBucket + "." + replicator.SwitchKey, "$JS.API.STREAM.CREATE." + kv,
			"$JS.API.CONSUMER.DELETE." + kv + ".>", "$JS.FC." + kv + ".>"}
	case secrets.RoleBench:
		// The benchmarks read the log like an auditor and write only
		// their raw baselines' scratch streams.
		pub = append(pub, "bench.>")
		for _, s := range benchStreams {
			pub = append(pub, "$JS.API.STREAM.CREATE."+s, "$JS.API.STREAM.DELETE."+s, "$JS.ACK."+s+".>")
		}
	}
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: pub},
		Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
	}
}

// nkeyUsers are the users every embedded server admits: each key of each
// user of the table, with its role's permissions.
func nkeyUsers(t secrets.Users) []*server.NkeyUser {
	all := t.Regions()
	var out []*server.NkeyUser
	for _, u := range t.Users {
		p := permissions(u, all)
		for _, k := range u.Keys {
			out = append(out, &server.NkeyUser{Nkey: k, Permissions: p})
		}
	}
	return out
}
