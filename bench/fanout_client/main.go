// Command fanout-client holds N marketdata StreamTrades/StreamQuotes streams through the edge and measures what
// they receive: the Go subscriber of bench/marketdata_fanout.py, so the bench measures the server rather than
// Python clients. `fanout-client publish` is the bench's load generator instead (see publish.go).
//
// Protocol (driven by the orchestrator, one JSON or text line each):
//
//	stdin:  {"target": "127.0.0.1:8080", "token": "...", "kind": "trade", "symbols": [...], "max_batch": 500,
//	        "batch_window_ms": 5, "streams": 100, "base": 123, "descriptors": "var/run/api.binpb",
//	        "edges_us": [...]}  then "stop" (or EOF) ends the measurement
//	stdout: "ready" (every stream got its first message, a heartbeat) or "not ready" (after 15 s),
//	        "progress <received>" every 100 ms, then "result <json>" with the fields the Python subscriber returns.
//
// Messages are described by the descriptor set the mesh writes (var/run/api.binpb): the request is built with
// dynamicpb, and responses are read straight off the wire (protowire) using the field numbers the descriptors
// give, decoding only symbol, sequence and event_time_ns of each update and the heartbeat counters.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

const service = "trade.marketdata.v1.MarketDataService"

type config struct {
	Target        string    `json:"target"`
	Token         string    `json:"token"`
	Kind          string    `json:"kind"`
	Symbols       []string  `json:"symbols"`
	MaxBatch      uint32    `json:"max_batch"`
	BatchWindowMs uint32    `json:"batch_window_ms"`
	Streams       int       `json:"streams"`
	Base          uint64    `json:"base"`
	Descriptors   string    `json:"descriptors"`
	EdgesUs       []float64 `json:"edges_us"`
	ReadyTimeoutS float64   `json:"ready_timeout_s"`
	MaxRunS       float64   `json:"max_run_s"`
}

type result struct {
	Streams      int      `json:"streams"`
	Received     int64    `json:"received"`
	Gaps         uint64   `json:"gaps"`
	Dropped      uint64   `json:"dropped"`
	Conflated    uint64   `json:"conflated"`
	LastRecvNs   int64    `json:"last_recv_ns"`
	MaxLatencyUs float64  `json:"max_latency_us"`
	Hist         []uint64 `json:"hist"`
	CPUS         float64  `json:"cpu_s"`
	Errors       []string `json:"errors"`
	Client       string   `json:"client"`
}

// wire holds the field numbers of the response messages, looked up by name in the descriptor set.
type wire struct {
	method                                 string
	request                                []byte
	single, heartbeat, batch, batchUpdates protowire.Number
	symbol, sequence, eventTime            protowire.Number
	dropped, conflated                     protowire.Number
}

func field(md protoreflect.MessageDescriptor, name string, kind protoreflect.Kind) (protowire.Number, error) {
	fd := md.Fields().ByName(protoreflect.Name(name))
	if fd == nil {
		return 0, fmt.Errorf("%s has no field %s", md.FullName(), name)
	}
	if fd.Kind() != kind {
		return 0, fmt.Errorf("%s.%s is %s, expected %s", md.FullName(), name, fd.Kind(), kind)
	}
	return fd.Number(), nil
}

func resolve(cfg *config) (*wire, error) {
	raw, err := os.ReadFile(cfg.Descriptors)
	if err != nil {
		return nil, err
	}
	set := &descriptorpb.FileDescriptorSet{}
	if err := proto.Unmarshal(raw, set); err != nil {
		return nil, fmt.Errorf("descriptor set %s: %w", cfg.Descriptors, err)
	}
	files, err := protodesc.NewFiles(set)
	if err != nil {
		return nil, fmt.Errorf("descriptor set %s: %w", cfg.Descriptors, err)
	}
	d, err := files.FindDescriptorByName(service)
	if err != nil {
		return nil, err
	}
	rpc, items := "StreamTrades", "trades"
	if cfg.Kind == "quote" {
		rpc, items = "StreamQuotes", "quotes"
	}
	m := d.(protoreflect.ServiceDescriptor).Methods().ByName(protoreflect.Name(rpc))
	if m == nil || !m.IsStreamingServer() {
		return nil, fmt.Errorf("%s.%s is not a server stream", service, rpc)
	}
	req := dynamicpb.NewMessage(m.Input())
	in := m.Input().Fields()
	symbols := req.Mutable(in.ByName("symbols")).List()
	for _, s := range cfg.Symbols {
		symbols.Append(protoreflect.ValueOfString(s))
	}
	req.Set(in.ByName("max_batch"), protoreflect.ValueOfUint32(cfg.MaxBatch))
	req.Set(in.ByName("batch_window_ms"), protoreflect.ValueOfUint32(cfg.BatchWindowMs))
	w := &wire{method: fmt.Sprintf("/%s/%s", service, rpc)}
	if w.request, err = proto.Marshal(req); err != nil {
		return nil, err
	}
	out := m.Output()
	update := out.Fields().ByName(protoreflect.Name(cfg.Kind))
	hb := out.Fields().ByName("heartbeat")
	batch := out.Fields().ByName("batch")
	if update == nil || hb == nil || batch == nil {
		return nil, fmt.Errorf("%s lacks %s/heartbeat/batch", out.FullName(), cfg.Kind)
	}
	steps := []struct {
		into *protowire.Number
		md   protoreflect.MessageDescriptor
		name string
		kind protoreflect.Kind
	}{
		{&w.single, out, cfg.Kind, protoreflect.MessageKind},
		{&w.heartbeat, out, "heartbeat", protoreflect.MessageKind},
		{&w.batch, out, "batch", protoreflect.MessageKind},
		{&w.batchUpdates, batch.Message(), items, protoreflect.MessageKind},
		{&w.symbol, update.Message(), "symbol", protoreflect.StringKind},
		{&w.sequence, update.Message(), "sequence", protoreflect.Uint64Kind},
		{&w.eventTime, update.Message(), "event_time_ns", protoreflect.Int64Kind},
		{&w.dropped, hb.Message(), "dropped_count", protoreflect.Uint64Kind},
		{&w.conflated, hb.Message(), "conflated_count", protoreflect.Uint64Kind},
	}
	for _, s := range steps {
		if *s.into, err = field(s.md, s.name, s.kind); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// frame is a serialized message; rawCodec hands the bytes through so responses are decoded by decode below.
type frame struct{ b []byte }

type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.(*frame).b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	f := v.(*frame)
	f.b = f.b[:0]
	for _, buf := range data {
		f.b = append(f.b, buf.ReadOnlyData()...)
	}
	return nil
}

func (rawCodec) Name() string { return "proto" }

type stream struct {
	w          *wire
	base       uint64
	edges      []float64
	received   atomic.Int64
	opened     chan struct{}
	done       chan struct{} // closed when the stream ended
	gaps       uint64
	dropped    uint64
	conflated  uint64
	lastRecvNs int64
	maxLatUs   float64
	hist       []uint64
	lastSeq    map[string]uint64
	err        error
}

var errBadWire = errors.New("malformed response")

// each calls fn(number, type, value) for every field of a message; value is the raw bytes for length-delimited
// fields, v the varint/fixed value otherwise.
func each(b []byte, fn func(num protowire.Number, typ protowire.Type, value []byte, v uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errBadWire
		}
		b = b[n:]
		var value []byte
		var v uint64
		switch typ {
		case protowire.BytesType:
			value, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.Fixed64Type:
			v, n = protowire.ConsumeFixed64(b)
		case protowire.Fixed32Type:
			var v32 uint32
			v32, n = protowire.ConsumeFixed32(b)
			v = uint64(v32)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return errBadWire
		}
		b = b[n:]
		if err := fn(num, typ, value, v); err != nil {
			return err
		}
	}
	return nil
}

func (s *stream) update(b []byte, now int64) error {
	var symbol []byte
	var seq uint64
	var eventTime int64
	err := each(b, func(num protowire.Number, typ protowire.Type, value []byte, v uint64) error {
		switch {
		case num == s.w.symbol && typ == protowire.BytesType:
			symbol = value
		case num == s.w.sequence && typ == protowire.VarintType:
			seq = v
		case num == s.w.eventTime && typ == protowire.VarintType:
			eventTime = int64(v)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if seq <= s.base {
		return nil // a late update of an earlier cell
	}
	s.received.Add(1)
	s.lastRecvNs = now
	latUs := float64(now-eventTime) / 1e3
	s.maxLatUs = max(s.maxLatUs, latUs)
	s.hist[bucket(s.edges, latUs)]++
	if prev, ok := s.lastSeq[string(symbol)]; ok {
		if seq > prev+1 {
			s.gaps += seq - prev - 1
		}
	}
	s.lastSeq[string(symbol)] = seq
	return nil
}

// bucket is numpy.histogram's bin of x clipped to the edges: edges[i] <= x < edges[i+1], the last bin closed.
func bucket(edges []float64, x float64) int {
	last := len(edges) - 2
	if !(x > edges[0]) { // also NaN
		return 0
	}
	i := sort.SearchFloat64s(edges, x) // first edge >= x
	if i < len(edges) && edges[i] == x {
		return min(i, last)
	}
	return min(i-1, last)
}

func (s *stream) message(b []byte, now int64) error {
	return each(b, func(num protowire.Number, typ protowire.Type, value []byte, v uint64) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case s.w.heartbeat:
			return each(value, func(num protowire.Number, typ protowire.Type, _ []byte, v uint64) error {
				switch {
				case num == s.w.dropped && typ == protowire.VarintType:
					s.dropped = v
				case num == s.w.conflated && typ == protowire.VarintType:
					s.conflated = v
				}
				return nil
			})
		case s.w.single:
			return s.update(value, now)
		case s.w.batch:
			return each(value, func(num protowire.Number, typ protowire.Type, value []byte, _ uint64) error {
				if num == s.w.batchUpdates && typ == protowire.BytesType {
					return s.update(value, now)
				}
				return nil
			})
		}
		return nil
	})
}

func (s *stream) run(ctx context.Context, conn *grpc.ClientConn) {
	defer close(s.done)
	desc := &grpc.StreamDesc{StreamName: s.w.method, ServerStreams: true}
	cs, err := conn.NewStream(ctx, desc, s.w.method, grpc.ForceCodecV2(rawCodec{}))
	if err == nil {
		err = cs.SendMsg(&frame{b: s.w.request})
	}
	if err == nil {
		err = cs.CloseSend()
	}
	var f frame
	opened := false
	for err == nil {
		err = cs.RecvMsg(&f)
		now := time.Now().UnixNano()
		if err != nil {
			break
		}
		if !opened {
			opened = true
			close(s.opened)
		}
		err = s.message(f.b, now)
	}
	if errors.Is(err, io.EOF) || (ctx.Err() != nil && status.Code(err) == codes.Canceled) {
		err = nil
	}
	s.err = err
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// logspace(0, 8, 801), as the bench's EDGES_US, when the orchestrator sends no edges.
func defaultEdges() []float64 {
	edges := make([]float64, 801)
	for i := range edges {
		edges[i] = math.Pow(10, float64(i)/100)
	}
	return edges
}

func main() {
	var err error
	if len(os.Args) > 1 && os.Args[1] == "publish" {
		err = runPublish()
	} else {
		err = run()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fanout-client:", err)
		os.Exit(1)
	}
}

func run() error {
	// The subscribers share the 2-core dev box with the server they measure. On one P they take less of it: at
	// 5k ticks/s x 100 streams 33-36 % of a core instead of 39 %, and the 10-stream p99 fell from 18-19 to 16 ms
	// (bench.marketdata_fanout, 3 runs against 2, 2026-11-26).
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<24)
	if !in.Scan() {
		return errors.New("no config line on stdin")
	}
	cfg := config{Kind: "trade", Streams: 1, Descriptors: "var/run/api.binpb", ReadyTimeoutS: 15, MaxRunS: 120}
	if err := json.Unmarshal(in.Bytes(), &cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if cfg.Kind != "trade" && cfg.Kind != "quote" {
		return fmt.Errorf("kind must be trade or quote, not %q", cfg.Kind)
	}
	if len(cfg.EdgesUs) < 2 {
		cfg.EdgesUs = defaultEdges()
	}
	w, err := resolve(&cfg)
	if err != nil {
		return err
	}
	out := bufio.NewWriter(os.Stdout)
	var outMu sync.Mutex
	say := func(format string, args ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(out, format+"\n", args...)
		_ = out.Flush()
	}

	stopped := make(chan struct{})
	go func() { // "stop" or EOF on stdin ends the measurement
		for in.Scan() {
			if strings.TrimSpace(in.Text()) == "stop" {
				break
			}
		}
		close(stopped)
	}()

	ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(
		context.Background(), "authorization", "Bearer "+cfg.Token))
	defer cancel()
	streams := make([]*stream, cfg.Streams)
	conns := make([]*grpc.ClientConn, cfg.Streams)
	var wg sync.WaitGroup
	for i := range streams {
		// One connection per stream, like the Python subscriber's channel per stream: Envoy sees N clients.
		conn, err := grpc.NewClient("passthrough:///"+cfg.Target,
			grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		conns[i] = conn
		streams[i] = &stream{
			w: w, base: cfg.Base, edges: cfg.EdgesUs, opened: make(chan struct{}), done: make(chan struct{}),
			hist: make([]uint64, len(cfg.EdgesUs)-1), lastSeq: map[string]uint64{}, maxLatUs: math.Inf(-1),
		}
		wg.Add(1)
		go func(s *stream, conn *grpc.ClientConn) {
			defer wg.Done()
			s.run(ctx, conn)
		}(streams[i], conn)
	}

	readyBy := time.After(time.Duration(cfg.ReadyTimeoutS * float64(time.Second)))
	ready := "ready"
wait:
	for i, s := range streams {
		select {
		case <-s.opened:
		case <-s.done: // ended before its first message (e.g. denied at the edge)
			select {
			case <-s.opened:
				continue
			default:
			}
			fmt.Fprintf(os.Stderr, "fanout-client: stream %d ended before its first message: %v\n", i, s.err)
			ready = "not ready"
			break wait
		case <-readyBy:
			ready = "not ready"
			break wait
		case <-stopped:
			ready = "not ready"
			break wait
		}
	}
	say("%s", ready)
	cpu0 := cpuSeconds()
	deadline := time.After(time.Duration(cfg.MaxRunS * float64(time.Second)))
	tick := time.NewTicker(100 * time.Millisecond)
progress:
	for {
		select {
		case <-tick.C:
			var total int64
			for _, s := range streams {
				total += s.received.Load()
			}
			say("progress %d", total)
		case <-stopped:
			break progress
		case <-deadline:
			break progress
		}
	}
	tick.Stop()
	cpu := cpuSeconds() - cpu0
	cancel()
	wg.Wait()
	for _, c := range conns {
		_ = c.Close()
	}

	res := result{Streams: cfg.Streams, Hist: make([]uint64, len(cfg.EdgesUs)-1), CPUS: cpu, Errors: []string{},
		MaxLatencyUs: math.NaN(), Client: "go"}
	for _, s := range streams {
		res.Received += s.received.Load()
		res.Gaps += s.gaps
		res.Dropped += s.dropped
		res.Conflated += s.conflated
		res.LastRecvNs = max(res.LastRecvNs, s.lastRecvNs)
		if s.received.Load() > 0 && (math.IsNaN(res.MaxLatencyUs) || s.maxLatUs > res.MaxLatencyUs) {
			res.MaxLatencyUs = s.maxLatUs
		}
		for i, c := range s.hist {
			res.Hist[i] += c
		}
		if s.err != nil && len(res.Errors) < 3 {
			res.Errors = append(res.Errors, s.err.Error())
		}
	}
	// JSON has no NaN: a stream without updates reports null, which the orchestrator reads as NaN.
	type jsonResult struct {
		result
		MaxLatencyUs *float64 `json:"max_latency_us"`
	}
	jr := jsonResult{result: res}
	if !math.IsNaN(res.MaxLatencyUs) {
		jr.MaxLatencyUs = &res.MaxLatencyUs
	}
	encoded, err := json.Marshal(jr)
	if err != nil {
		return err
	}
	say("result %s", encoded)
	return nil
}
