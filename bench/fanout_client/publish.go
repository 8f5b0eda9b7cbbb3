package main

// `fanout-client publish`: the bench's load generator, the Go twin of _generate in bench/marketdata_fanout.py.
//
// Protocol:
//
//	stdin:  {"nats_url": "nats://127.0.0.1:4222", "symbols": [...], "rate": 5000, "duration": 6, "base": 123,
//	        "mode": "js", "kind": "trade", "descriptors": "var/run/api.binpb", "coalesce_ms": 5}
//	stdout: "result <json>" with the keys _generate returns, then the process waits for EOF on stdin before it
//	        exits (so the orchestrator can read its CPU ticks from /proc first).
//
// Every message is the MarketDataBatch _batch builds, byte for byte: the field numbers and enum values come from
// the descriptor set, the bytes are written with protowire in field-number order (as the Python serializer does).
// Like the normalizer, it groups the ticks due since its last send per symbol (every coalesce_ms; 0: one tick per
// message), and every tick is stamped with the time it was due, so the wait to be grouped counts as latency.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

type publishConfig struct {
	NatsURL     string   `json:"nats_url"`
	Symbols     []string `json:"symbols"`
	Rate        int      `json:"rate"`
	Duration    float64  `json:"duration"`
	Base        uint64   `json:"base"`
	Mode        string   `json:"mode"`
	Kind        string   `json:"kind"`
	Descriptors string   `json:"descriptors"`
	MaxPending  int      `json:"max_pending"`
	StallWaitS  float64  `json:"stall_wait_s"`
	AckWaitS    float64  `json:"ack_wait_s"`
	CoalesceMs  float64  `json:"coalesce_ms"`
}

type publishResult struct {
	TargetRate     int      `json:"target_rate"`
	Sent           int      `json:"sent"`
	Acked          int      `json:"acked"`
	Failed         int      `json:"failed"`
	Stalls         int      `json:"stalls"`
	PublishWindowS float64  `json:"publish_window_s"`
	AckedRate      float64  `json:"acked_rate"`
	FirstPublishNs int64    `json:"first_publish_ns"`
	LastPublishNs  int64    `json:"last_publish_ns"`
	CPUS           float64  `json:"cpu_s"`
	AckP50Ms       *float64 `json:"ack_p50_ms"` // null (no acks) is read as NaN
	AckP99Ms       *float64 `json:"ack_p99_ms"`
	Generator      string   `json:"generator"`
	Messages       int      `json:"messages"`
}

// layout holds the field numbers and enum values of MarketDataEvent and its Trade/Quote payload.
type layout struct {
	batchEvents                          protowire.Number
	eventID, publishTime, payload        protowire.Number
	symbol, venue, tradeID               protowire.Number
	price, quantity, side                protowire.Number
	bidPrice, bidSize, askPrice, askSize protowire.Number
	sequence, eventTime, receiveTime     protowire.Number
	decimalValue                         protowire.Number
	venuePaper, sideBuy, sideSell        uint64
	quote                                bool
	price10025, price10026, qty05        []byte // the constant Decimals, encoded
}

// fieldStep resolves one field number by name, checking its kind.
type fieldStep struct {
	into *protowire.Number
	md   protoreflect.MessageDescriptor
	name string
	kind protoreflect.Kind
}

func enumValue(files *protoregistry.Files, enum, value string) (uint64, error) {
	d, err := files.FindDescriptorByName(protoreflect.FullName(enum))
	if err != nil {
		return 0, err
	}
	ed, ok := d.(protoreflect.EnumDescriptor)
	if !ok {
		return 0, fmt.Errorf("%s is not an enum", enum)
	}
	v := ed.Values().ByName(protoreflect.Name(value))
	if v == nil {
		return 0, fmt.Errorf("%s has no value %s", enum, value)
	}
	return uint64(v.Number()), nil
}

func message(files *protoregistry.Files, name string) (protoreflect.MessageDescriptor, error) {
	d, err := files.FindDescriptorByName(protoreflect.FullName(name))
	if err != nil {
		return nil, err
	}
	md, ok := d.(protoreflect.MessageDescriptor)
	if !ok {
		return nil, fmt.Errorf("%s is not a message", name)
	}
	return md, nil
}

func resolveLayout(path, kind string) (*layout, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	set := &descriptorpb.FileDescriptorSet{}
	if err := proto.Unmarshal(raw, set); err != nil {
		return nil, fmt.Errorf("descriptor set %s: %w", path, err)
	}
	files, err := protodesc.NewFiles(set)
	if err != nil {
		return nil, fmt.Errorf("descriptor set %s: %w", path, err)
	}
	event, err := message(files, "trade.normalizer.v1.MarketDataEvent")
	if err != nil {
		return nil, err
	}
	batch, err := message(files, "trade.normalizer.v1.MarketDataBatch")
	if err != nil {
		return nil, err
	}
	update, err := message(files, "trade.type.v1.Trade")
	if kind == "quote" {
		update, err = message(files, "trade.type.v1.Quote")
	}
	if err != nil {
		return nil, err
	}
	decimal, err := message(files, "trade.type.v1.Decimal")
	if err != nil {
		return nil, err
	}
	l := &layout{quote: kind == "quote"}
	msg, str, u64, i64, enum := protoreflect.MessageKind, protoreflect.StringKind, protoreflect.Uint64Kind,
		protoreflect.Int64Kind, protoreflect.EnumKind
	steps := []fieldStep{
		{&l.batchEvents, batch, "events", msg},
		{&l.eventID, event, "event_id", str},
		{&l.publishTime, event, "publish_time_ns", i64},
		{&l.payload, event, kind, msg},
		{&l.symbol, update, "symbol", str},
		{&l.venue, update, "venue", enum},
		{&l.sequence, update, "sequence", u64},
		{&l.eventTime, update, "event_time_ns", i64},
		{&l.receiveTime, update, "receive_time_ns", i64},
		{&l.decimalValue, decimal, "value", str},
	}
	if l.quote {
		steps = append(steps, []fieldStep{
			{&l.bidPrice, update, "bid_price", msg},
			{&l.bidSize, update, "bid_size", msg},
			{&l.askPrice, update, "ask_price", msg},
			{&l.askSize, update, "ask_size", msg},
		}...)
	} else {
		steps = append(steps, []fieldStep{
			{&l.tradeID, update, "trade_id", str},
			{&l.price, update, "price", msg},
			{&l.quantity, update, "quantity", msg},
			{&l.side, update, "aggressor_side", enum},
		}...)
	}
	for _, s := range steps {
		if *s.into, err = field(s.md, s.name, s.kind); err != nil {
			return nil, err
		}
	}
	if l.venuePaper, err = enumValue(files, "trade.type.v1.Venue", "VENUE_PAPER"); err != nil {
		return nil, err
	}
	if l.sideBuy, err = enumValue(files, "trade.type.v1.Side", "SIDE_BUY"); err != nil {
		return nil, err
	}
	if l.sideSell, err = enumValue(files, "trade.type.v1.Side", "SIDE_SELL"); err != nil {
		return nil, err
	}
	l.price10025, l.price10026, l.qty05 = l.decimal("100.25"), l.decimal("100.26"), l.decimal("0.5")
	return l, nil
}

// A field to write: a string, a varint or an embedded message (already encoded).
type pbField struct {
	num    protowire.Number
	typ    protowire.Type
	bytes  []byte
	varint uint64
}

func str(num protowire.Number, s string) pbField {
	return pbField{num: num, typ: protowire.BytesType, bytes: []byte(s)}
}

func varint(num protowire.Number, v uint64) pbField {
	return pbField{num: num, typ: protowire.VarintType, varint: v}
}

func embedded(num protowire.Number, b []byte) pbField {
	return pbField{num: num, typ: protowire.BytesType, bytes: b}
}

// encode writes the fields in field-number order and leaves out proto3 defaults (0, ""), as SerializeToString does;
// an embedded message is always written, even empty (it is set).
func encode(b []byte, fields []pbField) []byte {
	slices.SortFunc(fields, func(a, b pbField) int { return int(a.num) - int(b.num) })
	for _, f := range fields {
		switch f.typ {
		case protowire.VarintType:
			if f.varint == 0 {
				continue
			}
			b = protowire.AppendTag(b, f.num, protowire.VarintType)
			b = protowire.AppendVarint(b, f.varint)
		case protowire.BytesType:
			b = protowire.AppendTag(b, f.num, protowire.BytesType)
			b = protowire.AppendBytes(b, f.bytes)
		}
	}
	return b
}

func (l *layout) decimal(value string) []byte {
	return encode(nil, []pbField{str(l.decimalValue, value)})
}

// event is _event(kind, symbol, seq, now) of bench/marketdata_fanout.py: the update of _update in a MarketDataEvent.
func (l *layout) event(kind, symbol string, seq uint64, now int64) []byte {
	update := []pbField{
		str(l.symbol, symbol),
		varint(l.venue, l.venuePaper),
		varint(l.sequence, seq),
		varint(l.eventTime, uint64(now)),
		varint(l.receiveTime, uint64(now)),
	}
	if l.quote {
		update = append(update,
			embedded(l.bidPrice, l.price10025),
			embedded(l.bidSize, l.qty05),
			embedded(l.askPrice, l.price10026),
			embedded(l.askSize, l.qty05),
		)
	} else {
		side := l.sideSell
		if seq%2 == 1 {
			side = l.sideBuy
		}
		update = append(update,
			str(l.tradeID, strconv.FormatUint(seq, 10)),
			embedded(l.price, l.price10025),
			embedded(l.quantity, l.qty05),
			varint(l.side, side),
		)
	}
	payload := encode(make([]byte, 0, 96), update)
	return encode(make([]byte, 0, 160), []pbField{
		str(l.eventID, fmt.Sprintf("%s:%s:%d", kind, symbol, seq)),
		varint(l.publishTime, uint64(now)),
		embedded(l.payload, payload),
	})
}

// batch is _batch of bench/marketdata_fanout.py: the events in a MarketDataBatch (a repeated embedded message).
func (l *layout) batch(events [][]byte) []byte {
	size := 0
	for _, e := range events {
		size += len(e) + 4
	}
	b := make([]byte, 0, size)
	for _, e := range events {
		b = protowire.AppendTag(b, l.batchEvents, protowire.BytesType)
		b = protowire.AppendBytes(b, e)
	}
	return b
}

// percentile is numpy.percentile's default (linear interpolation between the closest ranks) of sorted values.
func percentile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	pos := q / 100 * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(sorted)-1)
	return sorted[lo] + (sorted[hi]-sorted[lo])*(pos-float64(lo))
}

func optional(v float64) *float64 {
	if math.IsNaN(v) {
		return nil
	}
	return &v
}

// ackTimes records publish -> JetStream ack of every acked message, keyed by the message the ack handler gets back,
// and counts the ticks of acked messages.
type ackTimes struct {
	mu      sync.Mutex
	started map[*nats.Msg]started
	ms      []float64
	acked   atomic.Int64
}

type started struct {
	at    time.Time
	ticks int
}

func (a *ackTimes) start(m *nats.Msg, t time.Time, ticks int) {
	a.mu.Lock()
	a.started[m] = started{t, ticks}
	a.mu.Unlock()
}

func (a *ackTimes) done(m *nats.Msg, ok bool) {
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	s, found := a.started[m]
	delete(a.started, m)
	if ok && found {
		a.acked.Add(int64(s.ticks))
		a.ms = append(a.ms, float64(now.Sub(s.at).Nanoseconds())/1e6)
	}
}

func publish(cfg publishConfig) (*publishResult, error) {
	if cfg.Kind != "trade" && cfg.Kind != "quote" {
		return nil, fmt.Errorf("kind must be trade or quote, not %q", cfg.Kind)
	}
	if cfg.Mode != "js" && cfg.Mode != "core" {
		return nil, fmt.Errorf("mode must be js or core, not %q", cfg.Mode)
	}
	if len(cfg.Symbols) == 0 || cfg.Rate <= 0 || cfg.Duration <= 0 {
		return nil, errors.New("needs symbols, a rate > 0 and a duration > 0")
	}
	l, err := resolveLayout(cfg.Descriptors, cfg.Kind)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(cfg.NatsURL, nats.Name("bench-marketdata-fanout"))
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	acks := &ackTimes{started: map[*nats.Msg]started{}}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(cfg.MaxPending),
		jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, m *nats.Msg, _ *jetstream.PubAck) {
			acks.done(m, true)
		}),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, _ error) {
			acks.done(m, false)
		}),
	)
	if err != nil {
		return nil, err
	}
	stallWait := jetstream.WithStallWait(time.Duration(cfg.StallWaitS * float64(time.Second)))

	symbols := len(cfg.Symbols)
	total := int(float64(cfg.Rate) * cfg.Duration)
	duration := time.Duration(cfg.Duration * float64(time.Second))
	cpu0 := cpuSeconds()
	firstNs := time.Now().UnixNano()
	t0 := time.Now()
	type pendingMsg struct {
		msg   *nats.Msg
		ticks int
	}
	var pending []pendingMsg // built, not yet handed to the client (a stalled publish waits for the next round)
	next, sent, stalls, messages := 0, 0, 0, 0
	coalesce := time.Duration(cfg.CoalesceMs * float64(time.Millisecond))
	lastSend := t0
	groups := make([][][]byte, symbols)
	for {
		elapsed := time.Since(t0)
		if elapsed >= duration {
			break
		}
		due := min(int(float64(cfg.Rate)*elapsed.Seconds())+1, total)
		if time.Since(lastSend) < coalesce && due < total {
			time.Sleep(time.Millisecond)
			continue
		}
		lastSend = time.Now()
		// The ticks due since the last send, grouped per symbol, symbols in the order of their first tick.
		for i := range groups {
			groups[i] = groups[i][:0]
		}
		for i := next; i < due; i++ {
			seq := cfg.Base + uint64(i/symbols) + 1
			stamp := firstNs + int64(float64(i)*1e9/float64(cfg.Rate))
			if coalesce == 0 {
				stamp = time.Now().UnixNano()
			}
			groups[i%symbols] = append(groups[i%symbols], l.event(cfg.Kind, cfg.Symbols[i%symbols], seq, stamp))
		}
		for k := 0; k < symbols && next+k < due; k++ {
			s := (next + k) % symbols
			seq := cfg.Base + uint64((next+k)/symbols) + 1
			id := fmt.Sprintf("%s:%s:%d+%d", cfg.Kind, cfg.Symbols[s], seq, len(groups[s]))
			pending = append(pending, pendingMsg{&nats.Msg{
				Subject: "md." + cfg.Kind + "." + cfg.Symbols[s],
				Header:  nats.Header{"Nats-Msg-Id": []string{id}},
				Data:    l.batch(groups[s]),
			}, len(groups[s])})
		}
		next = max(next, due)
		for len(pending) > 0 {
			p := pending[0]
			if cfg.Mode == "core" { // stored by MD all the same, but nobody waits for the ack
				if err := nc.PublishMsg(p.msg); err != nil {
					return nil, err
				}
			} else {
				acks.start(p.msg, time.Now(), p.ticks)
				if _, err := js.PublishMsgAsync(p.msg, stallWait); err != nil {
					acks.done(p.msg, false)
					if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
						stalls++
						break
					}
					return nil, err
				}
			}
			pending = pending[1:]
			sent += p.ticks
			messages++
		}
		time.Sleep(time.Millisecond)
	}
	lastNs := time.Now().UnixNano()
	publishWindow := time.Since(t0).Seconds()
	ackWait := time.Duration(cfg.AckWaitS * float64(time.Second))
	acked := 0
	if cfg.Mode == "core" {
		if err := nc.FlushTimeout(ackWait); err != nil {
			return nil, err
		}
		acked = sent
	} else {
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(ackWait):
		}
		acked = int(acks.acked.Load())
	}
	ackWindow := time.Since(t0).Seconds()
	acks.mu.Lock()
	ms := slices.Clone(acks.ms)
	acks.mu.Unlock()
	slices.Sort(ms)
	res := &publishResult{
		TargetRate:     cfg.Rate,
		Sent:           sent,
		Acked:          acked,
		Failed:         sent - acked,
		Stalls:         stalls,
		PublishWindowS: publishWindow,
		FirstPublishNs: firstNs,
		LastPublishNs:  lastNs,
		CPUS:           cpuSeconds() - cpu0,
		AckP50Ms:       optional(percentile(ms, 50)),
		AckP99Ms:       optional(percentile(ms, 99)),
		Generator:      "go",
		Messages:       messages,
	}
	if ackWindow > 0 {
		res.AckedRate = float64(acked) / ackWindow
	}
	return res, nil
}

func runPublish() error {
	// One paced loop plus nats.go's reader and flusher: on one P they hand off without waking other threads, about
	// a third less CPU at 5k/s on the 2-core dev box than with the default of one P per core.
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<24)
	if !in.Scan() {
		return errors.New("no config line on stdin")
	}
	cfg := publishConfig{
		NatsURL: nats.DefaultURL, Mode: "js", Kind: "trade", Descriptors: "var/run/api.binpb",
		MaxPending: 2000, StallWaitS: 1, AckWaitS: 15,
	}
	if err := json.Unmarshal(in.Bytes(), &cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	res, err := publish(cfg)
	if err != nil {
		return err
	}
	encoded, err := json.Marshal(res)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(os.Stdout, "result %s\n", encoded); err != nil {
		return err
	}
	// Stay (idle) until the orchestrator closed stdin: it reads this process's CPU ticks from /proc meanwhile.
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}
