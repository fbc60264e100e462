package claim

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// The intake rules as a table, without a database: each case is what the
// store read under its locks and the requests of one group, and the verdicts
// the rules must give.
func TestDecideIntake(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	const hold = 24 * time.Hour
	at := func(d time.Duration) *time.Time { t := now.Add(-d); return &t }

	reqA := Request{Token: "TOKEN_AAAAAAAAAA", SecretKey: ptr(Secret("a")), DurationMs: ptr(int64(60000))}
	reqA2 := Request{Token: "TOKEN_AAAAAAAAAA", SecretKey: ptr(Secret("other"))}
	reqB := Request{Token: "TOKEN_BBBBBBBBBB"}
	keyed := func(r Request, key string) Request { r.IdempotencyKey = key; return r }
	forced := func(r Request) Request { r.Force = true; return r }

	stored := uuid.MustParse("00000000-0000-7000-8000-000000000001")
	older := uuid.MustParse("00000000-0000-7000-8000-000000000000")
	// prior is a stored claim of r's device.
	prior := func(id uuid.UUID, r Request, st Status, deliveredAgo time.Duration) Prior {
		p := Prior{ID: id, Status: st, TokenHash: r.Token.Hash(), Fingerprint: r.Fingerprint()}
		if st == StatusDelivered {
			p.DeliveredAt = at(deliveredAgo)
		}
		return p
	}
	devices := func(ps ...Prior) map[string][]Prior {
		m := map[string][]Prior{}
		for _, p := range ps {
			m[string(p.TokenHash)] = append(m[string(p.TokenHash)], p)
		}
		return m
	}
	// keyOf is an Idempotency-Key used by request r, answered by claim id.
	keyOf := func(key string, id uuid.UUID, r Request) map[string]Prior {
		return map[string]Prior{key: {ID: id, TokenHash: r.Token.Hash(), Fingerprint: r.Fingerprint()}}
	}

	type want struct {
		kind   VerdictKind
		claim  int // index of the request whose new id answers (-1: stored, see id)
		id     uuid.UUID
		code   Code
		record bool
	}
	ins := func(i int) want { return want{kind: Insert, claim: i} }
	insKey := func(i int) want { return want{kind: Insert, claim: i, record: true} }
	replayStored := func(id uuid.UUID) want { return want{kind: Replay, claim: -1, id: id} }
	replayNew := func(i int) want { return want{kind: Replay, claim: i} }
	refuse := func(c Code, blocking uuid.UUID) want { return want{kind: Refuse, claim: -1, code: c, id: blocking} }

	for _, tc := range []struct {
		name string
		reqs []Request
		keys map[string]Prior
		devs map[string][]Prior
		want []want
	}{
		{"a new device inserts", []Request{reqA}, nil, nil, []want{ins(0)}},
		{"the same request while pending replays", []Request{reqA}, nil,
			devices(prior(stored, reqA, StatusPending, 0)), []want{replayStored(stored)}},
		{"another request while pending is refused", []Request{reqA2}, nil,
			devices(prior(stored, reqA, StatusPending, 0)), []want{refuse(CodeConflict, stored)}},
		{"force overrides the hold rule", []Request{forced(reqA2)}, nil,
			devices(prior(stored, reqA, StatusPending, 0)), []want{ins(0)}},
		{"force still replays the same request", []Request{forced(reqA)}, nil,
			devices(prior(stored, reqA, StatusPending, 0)), []want{replayStored(stored)}},
		{"delivered within the hold blocks", []Request{reqA2}, nil,
			devices(prior(stored, reqA, StatusDelivered, time.Hour)), []want{refuse(CodeConflict, stored)}},
		{"delivered within the hold replays the same request", []Request{reqA}, nil,
			devices(prior(stored, reqA, StatusDelivered, time.Hour)), []want{replayStored(stored)}},
		{"delivered before the hold does not block", []Request{reqA2}, nil,
			devices(prior(stored, reqA, StatusDelivered, 25*time.Hour)), []want{ins(0)}},
		{"nor replay", []Request{reqA}, nil,
			devices(prior(stored, reqA, StatusDelivered, 25*time.Hour)), []want{ins(0)}},
		{"final claims never block", []Request{reqA2}, nil,
			devices(prior(stored, reqA, StatusFailed, 0), prior(older, reqA, StatusRejected, 0)), []want{ins(0)}},
		{"the newest live claim decides", []Request{reqA2}, nil,
			devices(prior(stored, reqA2, StatusPending, 0), prior(older, reqA, StatusDelivered, time.Hour)),
			[]want{replayStored(stored)}},
		{"another device is not affected", []Request{reqB}, nil,
			devices(prior(stored, reqA, StatusPending, 0)), []want{ins(0)}},
		{"a new key is recorded with its new claim", []Request{keyed(reqA, "k")}, nil, nil, []want{insKey(0)}},
		{"a used key with the same request replays", []Request{keyed(reqA, "k")}, keyOf("k", stored, reqA), nil,
			[]want{replayStored(stored)}},
		{"a used key with another request is refused", []Request{keyed(reqA2, "k")}, keyOf("k", stored, reqA), nil,
			[]want{refuse(CodeIdemReuse, stored)}},
		{"a used key for another device is refused", []Request{keyed(reqB, "k")}, keyOf("k", stored, reqA), nil,
			[]want{refuse(CodeIdemReuse, stored)}},
		{"the key wins over the hold rule", []Request{keyed(reqA, "k")}, keyOf("k", stored, reqA),
			devices(prior(older, reqA2, StatusPending, 0)), []want{replayStored(stored)}},
		{"a key answered by a hold-rule replay is recorded", []Request{keyed(reqA, "k")}, nil,
			devices(prior(stored, reqA, StatusPending, 0)), []want{{kind: Replay, claim: -1, id: stored, record: true}}},
		{"a later request sees an earlier one's claim", []Request{reqA, reqA, reqA2}, nil, nil,
			[]want{ins(0), replayNew(0), {kind: Refuse, code: CodeConflict, claim: 0}}},
		{"and its key", []Request{keyed(reqA, "k"), keyed(reqA, "k"), keyed(reqB, "k")}, nil, nil,
			[]want{insKey(0), replayNew(0), {kind: Refuse, code: CodeIdemReuse, claim: 0}}},
		{"a forced request becomes the newest", []Request{reqA, forced(reqA2), reqA2}, nil, nil,
			[]want{ins(0), ins(1), replayNew(1)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := make([]Incoming, len(tc.reqs))
			for i, r := range tc.reqs {
				in[i] = NewIncoming(r, uuid.MustParse("00000000-0000-7000-8000-0000000001"+string(rune('0'+i))+"0"))
			}
			got := DecideIntake(in, IntakeView{Now: now, Hold: hold, Keys: tc.keys, Devices: tc.devs})
			for i, w := range tc.want {
				id := w.id
				if w.claim >= 0 && w.kind != Refuse {
					id = in[w.claim].NewID
				}
				if w.kind == Refuse && w.claim >= 0 {
					id = in[w.claim].NewID // refused by (or for the key of) a claim this group inserts
				}
				g := got[i]
				switch {
				case g.Kind != w.kind:
					t.Fatalf("request %d: verdict %v, want %v (%+v)", i, g.Kind, w.kind, g)
				case w.kind == Refuse:
					ref := g.Err.Blocking
					if w.code == CodeIdemReuse {
						ref = g.Err.Original
					}
					if g.Err.Code != w.code || ref == nil || *ref != id {
						t.Fatalf("request %d: refused with %+v, want %s naming %s", i, g.Err, w.code, id)
					}
				case g.Claim != id || g.RecordKey != w.record:
					t.Fatalf("request %d: claim %s record %v, want %s record %v", i, g.Claim, g.RecordKey, id, w.record)
				}
			}
		})
	}
}

// One rule, one message: intake and retry refuse with the same words.
func TestHoldConflictMessage(t *testing.T) {
	t.Parallel()
	id := uuid.New()
	pending, delivered := HoldConflict(Prior{ID: id, Status: StatusPending}), HoldConflict(Prior{ID: id, Status: StatusDelivered})
	if pending.Code != CodeConflict || *pending.Blocking != id || pending.Message == delivered.Message {
		t.Fatalf("pending %+v, delivered %+v", pending, delivered)
	}
	// A customer's typo drops a delivered device-side claim: the message must
	// not say a new claim is useless, and names the ways to send one.
	for _, want := range []string{"wrong secret", "?force=true", `"attribute"`} {
		if !strings.Contains(delivered.Message, want) {
			t.Errorf("the delivered-claim conflict does not mention %s: %s", want, delivered.Message)
		}
	}
	for _, c := range []*Error{pending, delivered, HoldConflict(Prior{ID: id, Status: StatusDelivered, Delivery: DeliveryAttribute})} {
		if !strings.Contains(c.Message, "?force=true") {
			t.Errorf("no way forward in %q", c.Message)
		}
	}
	now := time.Now()
	if b := Blocking([]Prior{{ID: id, Status: StatusPending}}, id, now, time.Hour); b != nil {
		t.Fatal("a claim blocks its own retry")
	}
}

// Attribute claims replace earlier attribute claims; they never silently
// compete with device-side claims (docs/design.md §9).
func TestDecideIntakeDeliveries(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	const hold = 24 * time.Hour
	ago := func(d time.Duration) *time.Time { x := now.Add(-d); return &x }
	in := func(d time.Duration) *time.Time { x := now.Add(d); return &x }
	const tok = Token("TOKEN_ATTRIBUTE_01")
	attr := func(secret string) Request {
		return Request{Token: tok, SecretKey: ptr(Secret(secret)), Delivery: DeliveryAttribute, DeviceName: "Sensor 1"}
	}
	mqtt := func(secret string) Request {
		return Request{Token: tok, SecretKey: ptr(Secret(secret)), Delivery: DeliveryMQTT}
	}
	old, older := uuid.New(), uuid.New()
	prior := func(id uuid.UUID, r Request, st Status, delivered, expires *time.Time) Prior {
		return Prior{ID: id, Status: st, Delivery: r.Delivery, DeliveredAt: delivered, ExpiresAt: expires,
			TokenHash: r.Token.Hash(), Fingerprint: r.Fingerprint()}
	}
	newID := uuid.New()
	for _, tc := range []struct {
		name      string
		req       Request
		claims    []Prior // newest first
		kind      VerdictKind
		supersede []uuid.UUID
		blocking  uuid.UUID
	}{
		{"attribute replaces a live attribute claim", attr("b"),
			[]Prior{prior(old, attr("a"), StatusDelivered, ago(time.Hour), in(time.Hour))}, Insert, []uuid.UUID{old}, uuid.Nil},
		{"and a pending one", attr("b"),
			[]Prior{prior(old, attr("a"), StatusPending, nil, nil)}, Insert, []uuid.UUID{old}, uuid.Nil},
		{"the same attribute request replays", attr("a"),
			[]Prior{prior(old, attr("a"), StatusDelivered, ago(time.Hour), in(time.Hour))}, Replay, nil, uuid.Nil},
		{"an expired attribute claim is not live", attr("b"),
			[]Prior{prior(old, attr("a"), StatusDelivered, ago(48*time.Hour), ago(time.Hour))}, Insert, nil, uuid.Nil},
		{"a live attribute claim lives past the hold", mqtt("b"),
			[]Prior{prior(old, attr("a"), StatusDelivered, ago(30*24*time.Hour), in(time.Hour))}, Refuse, nil, old},
		{"attribute does not replace a device-side claim in ThingsBoard's cache", attr("b"),
			[]Prior{prior(old, mqtt("a"), StatusDelivered, ago(time.Hour), in(time.Hour))}, Refuse, nil, old},
		{"device-side does not compete with a live attribute claim", mqtt("b"),
			[]Prior{prior(old, attr("a"), StatusDelivered, ago(time.Hour), in(time.Hour))}, Refuse, nil, old},
		{"forced attribute supersedes only attribute claims", func() Request { r := attr("b"); r.Force = true; return r }(),
			[]Prior{prior(old, mqtt("a"), StatusPending, nil, nil), prior(older, attr("x"), StatusDelivered, ago(time.Hour), in(time.Hour))},
			Insert, []uuid.UUID{older}, uuid.Nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := DecideIntake([]Incoming{NewIncoming(tc.req, newID)}, IntakeView{Now: now, Hold: hold,
				Devices: map[string][]Prior{string(tok.Hash()): tc.claims}})[0]
			if v.Kind != tc.kind || len(v.Supersede) != len(tc.supersede) {
				t.Fatalf("verdict %+v, want kind %v superseding %v", v, tc.kind, tc.supersede)
			}
			for i := range tc.supersede {
				if v.Supersede[i] != tc.supersede[i] {
					t.Fatalf("supersedes %v, want %v", v.Supersede, tc.supersede)
				}
			}
			if tc.kind == Refuse && (v.Err.Blocking == nil || *v.Err.Blocking != tc.blocking) {
				t.Fatalf("refused with %+v, want it to name %s", v.Err, tc.blocking)
			}
		})
	}
	// In one group: the second attribute claim replaces the first, which the
	// group itself inserts.
	first, second := uuid.New(), uuid.New()
	vs := DecideIntake([]Incoming{NewIncoming(attr("a"), first), NewIncoming(attr("b"), second)}, IntakeView{Now: now, Hold: hold})
	if vs[0].Kind != Insert || vs[1].Kind != Insert || len(vs[1].Supersede) != 1 || vs[1].Supersede[0] != first {
		t.Fatalf("verdicts %+v", vs)
	}
}
