package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/access"
	"github.com/arbiter-nba/arbiter/catalog"
	"github.com/arbiter-nba/arbiter/decision"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
	"github.com/arbiter-nba/arbiter/recipient"
	"github.com/arbiter-nba/arbiter/redisstore"
)

// The decision log: every Decide, DecideBatch item and CheckSend writes a
// receipt (decision.Receipt, stored as DecisionReceipt: receipts.go).
//
// Asynchronously (the default), a decision puts its receipt on a bounded
// queue and answers; writers take the queue in batches, across concurrent
// decisions, and append each batch in one pipeline. Nothing is added to
// the decision's own path but the enqueue: no round trip, no encoding.
// A full queue drops the receipt, and a failed write loses its batch:
// both are counted (arbiter_receipts_total{result="dropped"|"failed"}) and
// logged, never silent. A process killed outright loses at most what the
// queue holds (ReceiptConfig.Queue) plus the batches being written.
//
// Synchronously, a decision answers only once its receipt is stored; if
// it cannot be stored the caller gets UNAVAILABLE, and the decision is not
// given. A CheckSend that books a touch always writes its receipt with the
// booking, in the booking's own script, whatever the mode.

// ReceiptMode says how receipts are written.
type ReceiptMode uint8

const (
	ReceiptsOff   ReceiptMode = iota // none are written
	ReceiptsAsync                    // queued, written in batches off the decision's path
	ReceiptsSync                     // written before the answer
)

// ParseReceiptMode parses "off", "async" or "sync".
func ParseReceiptMode(s string) (ReceiptMode, bool) {
	switch s {
	case "off":
		return ReceiptsOff, true
	case "async":
		return ReceiptsAsync, true
	case "sync":
		return ReceiptsSync, true
	}
	return ReceiptsOff, false
}

// DecisionLog stores receipts (redisstore.Store).
type DecisionLog interface {
	AppendReceipts(ctx context.Context, rs []redisstore.StoredReceipt) (skipped int, err error)
	Receipt(ctx context.Context, hcpID, id string, at time.Time) ([]byte, error)
	ReceiptBefore(ctx context.Context, hcpID string, at time.Time) ([]byte, error)
	Receipts(ctx context.Context, hcpID string, from, to time.Time, limit int) ([][]byte, bool, error)
	ScanReceipts(ctx context.Context, from, to time.Time, progress *atomic.Int64, fn func(hcpID string, receipts [][]byte) error) error
}

// Replayer gives the engine of a definitions set, by version, for replays
// and evidence: the set in use, or one loaded from the store (where sets
// are kept by hash).
type Replayer interface {
	EngineFor(ctx context.Context, version string) (*decision.Engine, error)
}

// ReceiptConfig configures the decision log.
type ReceiptConfig struct {
	Mode ReceiptMode
	// Queue bounds the receipts waiting to be written (async), and Batch
	// the receipts of one write. Defaults: 8192 and 256.
	Queue, Batch int
	// Build is the server's build id, in every receipt.
	Build string
	// Key opens decision ids (nil: GetDecision and ReplayDecision find
	// nothing, and every outcome's decision link is unverified).
	Key *decision.IDKey
}

// WithDecisionLog writes receipts to store and serves the
// DecisionLogService from it, replaying with rep.
func WithDecisionLog(store DecisionLog, rep Replayer, cfg ReceiptConfig) Option {
	return func(s *Server) {
		if cfg.Queue <= 0 {
			cfg.Queue = 8192
		}
		if cfg.Batch <= 0 {
			cfg.Batch = 256
		}
		s.dlog = &receiptLog{store: store, rep: rep, cfg: cfg, q: make(chan pendingReceipt, cfg.Queue)}
	}
}

// pendingReceipt is a receipt waiting to be written, with the answer the
// caller got, already converted.
type pendingReceipt struct {
	rc      *decision.Receipt
	decided *nbapb.DecideResponse
	checked *nbapb.CheckSendResponse
	// link is the span of the call that made it, which its batch's span
	// links to (nil: none, or tracing off).
	link *trace.SpanContext
}

type receiptLog struct {
	store DecisionLog
	rep   Replayer
	cfg   ReceiptConfig
	log   *slog.Logger

	mu     sync.RWMutex // held to enqueue; Close takes it to close q
	closed bool
	q      chan pendingReceipt
	wg     sync.WaitGroup

	written, failed, dropped atomic.Int64
	lastWarn                 atomic.Int64 // unix ns of the last loss logged

	// pending counts the receipts queued or being written; idle is
	// signalled when it falls to zero (Flush).
	pendingMu sync.Mutex
	pending   int
	idle      *sync.Cond

	// stopCtx bounds the writers' writes; close cancels it when its own
	// time is up, so that no writer outlives the server.
	stopCtx    context.Context
	stopWrites context.CancelFunc
	metrics    *receiptMetrics
	// tracer traces the writes (tracing.go; nil: off).
	tracer trace.Tracer
}

type receiptMetrics struct {
	written, failed, dropped, erased prometheus.Counter
	links                            *prometheus.CounterVec
}

// receiptWriters write the queue; each waits up to receiptLinger after a
// receipt for more to batch with it.
const (
	receiptWriters = 2
	receiptLinger  = 5 * time.Millisecond
)

func (l *receiptLog) start(log *slog.Logger, reg prometheus.Registerer) {
	l.log = log
	if reg != nil {
		byResult := prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "arbiter_receipts_total",
			Help: "Decision receipts, by what became of them: written, failed (a write that failed, or a synchronous one: then the decision was refused), dropped (the queue was full), erased (not written: the recipient was erased since the decision).",
		}, []string{"result"})
		l.metrics = &receiptMetrics{written: byResult.WithLabelValues("written"), failed: byResult.WithLabelValues("failed"),
			dropped: byResult.WithLabelValues("dropped"), erased: byResult.WithLabelValues("erased"),
			links: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "arbiter_decision_links_total",
				Help: "Outcome events quoting a decision id, by what the id was: verified (this deployment's, for this recipient), unverified (an id it cannot open; the event is applied), refused (another recipient's; the event is not applied).",
			}, []string{"link"})}
		queue := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "arbiter_receipt_queue",
			Help: "Receipts waiting to be written (asynchronous log).",
		}, func() float64 { return float64(len(l.q)) })
		reg.MustRegister(byResult, l.metrics.links, queue)
	}
	if l.cfg.Mode != ReceiptsAsync {
		return
	}
	l.idle = sync.NewCond(&l.pendingMu)
	l.stopCtx, l.stopWrites = context.WithCancel(context.Background())
	for range receiptWriters {
		l.wg.Add(1)
		go l.run()
	}
}

// record logs one receipt, as the mode says. In sync mode an error is
// the caller's answer: the decision was made, and not given, because its
// receipt could not be stored.
func (l *receiptLog) record(ctx context.Context, p pendingReceipt) error {
	if l == nil || l.cfg.Mode == ReceiptsOff {
		return nil
	}
	p.rc.Build = l.cfg.Build
	if l.cfg.Mode == ReceiptsSync {
		sr, err := stored(p)
		if err == nil {
			wctx, span := l.startWrite(ctx, 1)
			var skipped int
			skipped, err = l.store.AppendReceipts(wctx, []redisstore.StoredReceipt{sr})
			endWrite(span, skipped, err)
		}
		if err != nil {
			l.count(&l.failed, 1, func(m *receiptMetrics) prometheus.Counter { return m.failed })
			return fmt.Errorf("%w: the decision was made but its receipt could not be stored, so it is not given; ask again", arbiter.ErrUnavailable)
		}
		l.count(&l.written, 1, func(m *receiptMetrics) prometheus.Counter { return m.written })
		return nil
	}
	p.link = l.linkOf(ctx)
	l.addPending(1)
	l.mu.RLock()
	ok := !l.closed
	if ok {
		select {
		case l.q <- p:
		default:
			ok = false
		}
	}
	l.mu.RUnlock()
	if !ok {
		l.addPending(-1)
	}
	if !ok {
		l.count(&l.dropped, 1, func(m *receiptMetrics) prometheus.Counter { return m.dropped })
		l.warn("decision log: receipt dropped: the queue is full (or the server is stopping)", "queue", cap(l.q))
	}
	return nil
}

func (l *receiptLog) count(n *atomic.Int64, d int64, c func(*receiptMetrics) prometheus.Counter) {
	n.Add(d)
	if l.metrics != nil {
		c(l.metrics).Add(float64(d))
	}
}

// warn logs a loss at most once a second, with the totals so far.
func (l *receiptLog) warn(msg string, args ...any) {
	now := time.Now().UnixNano()
	last := l.lastWarn.Load()
	if now-last < int64(time.Second) || !l.lastWarn.CompareAndSwap(last, now) {
		return
	}
	l.log.Warn(msg, append(args, "dropped_total", l.dropped.Load(), "failed_total", l.failed.Load())...)
}

func stored(p pendingReceipt) (redisstore.StoredReceipt, error) {
	sr, _, err := storedAppend(nil, p)
	return sr, err
}

// storedAppend is stored, with the receipt's bytes appended to buf (a
// writer's buffer for its batch): the receipt's Data is in the buf it
// returns.
func storedAppend(buf []byte, p pendingReceipt) (redisstore.StoredReceipt, []byte, error) {
	start := len(buf)
	out, err := receiptProtoAppend(buf, p.rc, p.decided, p.checked)
	if err != nil {
		return redisstore.StoredReceipt{}, buf, err
	}
	return redisstore.StoredReceipt{HCPID: p.rc.HCPID(), ID: p.rc.ID(), At: p.rc.Logged(),
		Data: out[start:len(out):len(out)]}, out, nil
}

func (l *receiptLog) addPending(d int) {
	l.pendingMu.Lock()
	l.pending += d
	if l.pending == 0 {
		l.idle.Broadcast()
	}
	l.pendingMu.Unlock()
}

// flush waits until every receipt queued so far is written (or lost),
// or ctx ends.
func (l *receiptLog) flush(ctx context.Context) error {
	if l == nil || l.idle == nil {
		return nil
	}
	stop := context.AfterFunc(ctx, func() {
		l.pendingMu.Lock()
		l.idle.Broadcast()
		l.pendingMu.Unlock()
	})
	defer stop()
	l.pendingMu.Lock()
	defer l.pendingMu.Unlock()
	for l.pending > 0 && ctx.Err() == nil {
		l.idle.Wait()
	}
	return ctx.Err()
}

// FlushDecisionLog waits until every receipt queued so far is written (or
// counted as lost), or ctx ends.
func (s *Server) FlushDecisionLog(ctx context.Context) error { return s.dlog.flush(ctx) }

// run writes the queue in batches until it is closed and empty.
func (l *receiptLog) run() {
	defer l.wg.Done()
	batch := make([]redisstore.StoredReceipt, 0, l.cfg.Batch)
	// The batch's receipts are encoded one after the other into buf,
	// which the next batch reuses once this one is written (AppendReceipts
	// keeps nothing): no allocation per receipt for its bytes.
	var buf []byte
	var links []trace.Link // the batch's calls' spans, with tracing
	add := func(p pendingReceipt) {
		// A DecideBatch's items follow each other: one link for them.
		if p.link != nil && (len(links) == 0 || links[len(links)-1].SpanContext.SpanID() != p.link.SpanID()) {
			links = append(links, trace.Link{SpanContext: *p.link})
		}
		sr, next, err := storedAppend(buf, p)
		buf = next
		if err != nil {
			l.count(&l.failed, 1, func(m *receiptMetrics) prometheus.Counter { return m.failed })
			l.warn("decision log: a receipt could not be encoded")
			return
		}
		batch = append(batch, sr)
	}
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	for p := range l.q {
		taken := 1
		batch, links, buf = batch[:0], links[:0], buf[:0]
		add(p)
		// Wait a little for more: one pipeline of many receipts costs the
		// server (and Redis) far less than many of one (a write and a read
		// system call, and a wake-up, each).
		linger.Reset(receiptLinger)
	fill:
		for taken < l.cfg.Batch {
			select {
			case p, ok := <-l.q:
				if !ok {
					break fill
				}
				taken++
				add(p)
			case <-linger.C:
				break fill
			}
		}
		linger.Stop()
		ctx, cancel := context.WithTimeout(l.stopCtx, 5*time.Second)
		ctx, span := l.startWrite(ctx, len(batch), trace.WithNewRoot(), trace.WithLinks(links...))
		skipped, err := l.store.AppendReceipts(ctx, batch)
		endWrite(span, skipped, err)
		cancel()
		if err != nil {
			l.count(&l.failed, int64(len(batch)), func(m *receiptMetrics) prometheus.Counter { return m.failed })
			l.warn("decision log: receipts not written", "receipts", len(batch), "error", errors.Unwrap(err))
		} else {
			// Those of recipients erased since their decision are not
			// written, on purpose.
			l.count(&l.written, int64(len(batch)-skipped), func(m *receiptMetrics) prometheus.Counter { return m.written })
			if skipped > 0 && l.metrics != nil {
				l.metrics.erased.Add(float64(skipped))
			}
		}
		l.addPending(-taken)
	}
}

// close stops taking receipts and writes what the queue holds, until ctx
// ends.
func (l *receiptLog) close(ctx context.Context) {
	if l == nil {
		return
	}
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.q)
	}
	l.mu.Unlock()
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		left := len(l.q)
		if l.stopWrites != nil {
			l.stopWrites() // what is left fails fast, and is counted
		}
		<-done
		l.log.Warn("decision log: stopped before the queue was written", "receipts_left", left, "failed_total", l.failed.Load())
	}
}

// countLink counts an outcome's decision link (-1: refused).
func (l *receiptLog) countLink(link nbapb.DecisionLink) {
	if l == nil || l.metrics == nil || link == nbapb.DecisionLink_DECISION_LINK_UNSPECIFIED {
		return
	}
	name := "refused"
	switch link {
	case nbapb.DecisionLink_DECISION_LINK_VERIFIED:
		name = "verified"
	case nbapb.DecisionLink_DECISION_LINK_UNVERIFIED:
		name = "unverified"
	}
	l.metrics.links.WithLabelValues(name).Inc()
}

// CloseDecisionLog stops the decision log, writing the receipts queued,
// until ctx ends. Call it after the gRPC server stopped.
func (s *Server) CloseDecisionLog(ctx context.Context) { s.dlog.close(ctx) }

// ReceiptCounts are the decision log's totals so far.
type ReceiptCounts struct{ Written, Failed, Dropped int64 }

// ReceiptCounts returns the decision log's totals so far.
func (s *Server) ReceiptCounts() ReceiptCounts {
	if s.dlog == nil {
		return ReceiptCounts{}
	}
	return ReceiptCounts{s.dlog.written.Load(), s.dlog.failed.Load(), s.dlog.dropped.Load()}
}

// logDecision logs a decision's receipt, with the answer the caller gets.
func (s *Server) logDecision(ctx context.Context, kind decision.ReceiptKind, req decision.Request, res *decision.Result,
	resp *nbapb.DecideResponse) error {
	if s.dlog == nil {
		return nil
	}
	return s.dlog.record(ctx, pendingReceipt{rc: &decision.Receipt{Kind: kind, Principal: subjectOf(ctx), Request: req,
		Result: res}, decided: resp})
}

// logCheck logs a pre-send check's receipt, unless its booking wrote it.
func (s *Server) logCheck(ctx context.Context, req decision.SendRequest, res *decision.SendResult, resp *nbapb.CheckSendResponse) error {
	if s.dlog == nil || res.ReceiptStored {
		return nil
	}
	return s.dlog.record(ctx, pendingReceipt{rc: &decision.Receipt{Kind: decision.KindCheckSend, Principal: subjectOf(ctx),
		Send: req, SendResult: res}, checked: resp})
}

func subjectOf(ctx context.Context) string {
	if p, ok := access.FromContext(ctx); ok {
		return p.Subject
	}
	return ""
}

// ------------------------------------------------------------ the service

const (
	defaultListLimit = 100
	maxListLimit     = 1000
	exportBatch      = 100
)

// receiptFor finds the receipt of a decision id.
func (s *Server) receiptFor(ctx context.Context, id string) (*nbapb.DecisionReceipt, error) {
	if id == "" {
		return nil, arbiter.Invalid("decision_id", "is required")
	}
	if s.dlog.cfg.Key == nil {
		return nil, fmt.Errorf("%w: this server has no decision id key", arbiter.ErrNotFound)
	}
	hcpID, at, err := s.dlog.cfg.Key.Open(id)
	if err != nil {
		return nil, fmt.Errorf("get decision: %w: no decision of this deployment has this id", arbiter.ErrNotFound)
	}
	data, err := s.dlog.store.Receipt(ctx, hcpID, id, at)
	if err != nil {
		return nil, err
	}
	p, err := s.decodeReceipt(ctx, data)
	if err != nil {
		return nil, fmt.Errorf("get decision: %w", arbiter.ErrCorrupt)
	}
	return p, nil
}

// decodeReceipt reads a stored receipt, naming its actions from the
// catalog of its definitions set.
func (s *Server) decodeReceipt(ctx context.Context, data []byte) (*nbapb.DecisionReceipt, error) {
	return DecodeReceipt(data, func(version string) *catalog.Catalog {
		e, err := s.dlog.rep.EngineFor(ctx, version)
		if err != nil {
			return nil
		}
		return e.Catalog()
	})
}

// GetDecision returns one receipt, with the evidence of what allowed each
// recommended or allowed action.
func (s *Server) GetDecision(ctx context.Context, req *nbapb.GetDecisionRequest) (*nbapb.GetDecisionResponse, error) {
	if err := checkStrings(req); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	p, err := s.receiptFor(ctx, req.GetDecisionId())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return &nbapb.GetDecisionResponse{Receipt: p, Evidence: s.evidence(ctx, p)}, nil
}

// evidence works out what allowed each recommended or allowed action of
// a receipt: the consent record (found in the ledger) and the approval.
func (s *Server) evidence(ctx context.Context, p *nbapb.DecisionReceipt) []*nbapb.ActionEvidence {
	var ids []string
	for _, r := range p.GetDecided().GetRecommendations() {
		ids = append(ids, r.GetActionId())
	}
	if c := p.GetChecked(); c.GetAllowed() {
		ids = append(ids, c.GetActionId())
	}
	if len(ids) == 0 {
		return nil
	}
	out := make([]*nbapb.ActionEvidence, len(ids))
	for i, id := range ids {
		out[i] = &nbapb.ActionEvidence{ActionId: id, ConsentLedgerSeq: -1}
	}
	e, err := s.dlog.rep.EngineFor(ctx, p.GetDefinitionsVersion())
	if err != nil || p.GetInputs() == nil {
		for _, ev := range out {
			ev.Unavailable = "the definitions set " + p.GetDefinitionsVersion() + " is no longer kept"
		}
		return out
	}
	st := inputsOf(p.GetHcpId(), p.GetInputs())
	at := fromTS(p.GetDecisionTime())
	var ledger []*nbapb.LedgerEntry // read once, when a record needs it
	for _, ev := range out {
		a, ok := e.Allowance(st, ev.ActionId, at)
		if !ok {
			ev.Unavailable = "the action is not in the decision's catalog"
			continue
		}
		ev.ApprovalId, ev.ApprovalStatus = a.Approval.ID, a.Approval.Status.String()
		ev.ApprovalValidFrom, ev.ApprovalValidUntil = ts(a.Approval.ValidFrom), ts(a.Approval.ValidUntil)
		if a.Record == nil {
			ev.ByDefault = a.Consent.ByDefault
			continue
		}
		ev.ConsentRecord = toConsentRecord(a.Record)
		if ledger == nil && s.consents != nil {
			ledger = s.ledgerUpTo(ctx, p.GetHcpId(), p.GetInputs().GetConsentVersion())
		}
		ev.ConsentLedgerSeq = ledgerSeqOf(ledger, ev.ConsentRecord)
	}
	return out
}

// ledgerUpTo reads a recipient's consent ledger, its first n entries (the
// ledger as a decision read it).
func (s *Server) ledgerUpTo(ctx context.Context, hcpID string, n int64) []*nbapb.LedgerEntry {
	var out []*nbapb.LedgerEntry
	for off := 0; int64(off) < n; off += maxHistoryPage {
		es, _, err := s.consents.ConsentHistory(ctx, hcpID, off, min(maxHistoryPage, int(n)-off))
		if err != nil || len(es) == 0 {
			break
		}
		for i := range es {
			out = append(out, toLedgerEntry(&es[i]))
		}
	}
	return out
}

const maxHistoryPage = 1000

// ledgerSeqOf is the sequence number of the last applied ledger entry that
// wrote record r, or -1.
func ledgerSeqOf(ledger []*nbapb.LedgerEntry, r *nbapb.ConsentRecord) int64 {
	for i := len(ledger) - 1; i >= 0; i-- {
		if e := ledger[i]; e.GetApplied() && proto.Equal(e.GetRecord(), r) {
			return e.GetSeq()
		}
	}
	return -1
}

// ListDecisions lists a recipient's receipts in a time range.
func (s *Server) ListDecisions(ctx context.Context, req *nbapb.ListDecisionsRequest) (*nbapb.ListDecisionsResponse, error) {
	if err := checkStrings(req); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	var inv arbiter.InvalidError
	if req.GetHcpId() == "" {
		inv.Add("hcp_id", "is required")
	} else if err := recipient.ValidID(req.GetHcpId()); err != nil {
		inv.Add("hcp_id", err.Error())
	}
	from, to := req.GetFrom(), req.GetTo()
	checkRange(&inv, from, to)
	limit := int(req.GetLimit())
	switch {
	case limit == 0:
		limit = defaultListLimit
	case limit < 0 || limit > maxListLimit:
		inv.Add("limit", "must be 0 to 1000")
	}
	if err := inv.Err(); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	recs, more, err := s.dlog.store.Receipts(ctx, req.GetHcpId(), from.AsTime(), to.AsTime(), limit)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	out := &nbapb.ListDecisionsResponse{Truncated: more}
	for _, data := range recs {
		p, err := s.decodeReceipt(ctx, data)
		if err != nil {
			return nil, toStatus(ctx, s.log, fmt.Errorf("list decisions: %w", arbiter.ErrCorrupt))
		}
		out.Receipts = append(out.Receipts, p)
	}
	return out, nil
}

func checkRange(inv *arbiter.InvalidError, from, to interface {
	IsValid() bool
	AsTime() time.Time
}) {
	okFrom, okTo := from != nil && from.IsValid(), to != nil && to.IsValid()
	if !okFrom {
		inv.Add("from", "is required: a valid time")
	}
	if !okTo {
		inv.Add("to", "is required: a valid time")
	}
	if okFrom && okTo && !to.AsTime().After(from.AsTime()) {
		inv.Add("to", "must be after from")
	}
}

// ReplayDecision recomputes a logged decision and compares.
func (s *Server) ReplayDecision(ctx context.Context, req *nbapb.ReplayDecisionRequest) (*nbapb.ReplayDecisionResponse, error) {
	if err := checkStrings(req); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	p, err := s.receiptFor(ctx, req.GetDecisionId())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return s.replay(ctx, p), nil
}

// replay recomputes a receipt's decision with the engine of its
// definitions set, and compares it with the logged answer.
func (s *Server) replay(ctx context.Context, p *nbapb.DecisionReceipt) *nbapb.ReplayDecisionResponse {
	out := &nbapb.ReplayDecisionResponse{}
	rc, err := receiptOf(p)
	if err == nil && p.GetInputs() == nil {
		err = errors.New("the receipt has no inputs")
	}
	if err != nil {
		out.NotReplayable = err.Error()
		return out
	}
	e, err := s.dlog.rep.EngineFor(ctx, p.GetDefinitionsVersion())
	if err != nil {
		out.NotReplayable = "the definitions set " + p.GetDefinitionsVersion() + " is no longer kept (or cannot be read now)"
		return out
	}
	res, sres, err := e.Replay(ctx, rc)
	if err != nil {
		out.NotReplayable = "the decision cannot be recomputed: " + replayErrText(err)
		return out
	}
	if res != nil {
		out.Decided = decideResponse(res)
		out.Differences = diffDecided(p.GetDecided(), out.Decided)
	} else {
		out.Checked = checkSendResponse(sres)
		out.Differences = diffChecked(p.GetChecked(), out.Checked)
	}
	out.Identical = len(out.Differences) == 0
	return out
}

// replayErrText says why a replay failed without storage or parser text.
func replayErrText(err error) string {
	var inv *arbiter.InvalidError
	switch {
	case errors.As(err, &inv):
		return "the logged request is not valid with its definitions set"
	case errors.Is(err, decision.ErrNotReplayable):
		return "the receipt does not match the definitions set"
	}
	return "an error"
}

// ExportDecisions streams every receipt of a time range.
func (s *Server) ExportDecisions(req *nbapb.ExportDecisionsRequest, stream grpc.ServerStreamingServer[nbapb.ExportDecisionsResponse]) error {
	ctx := stream.Context()
	if err := checkStrings(req); err != nil {
		return toStatus(ctx, s.log, err)
	}
	var inv arbiter.InvalidError
	checkRange(&inv, req.GetFrom(), req.GetTo())
	if err := inv.Err(); err != nil {
		return toStatus(ctx, s.log, err)
	}
	var scanned atomic.Int64
	var sent int64
	batch := &nbapb.ExportDecisionsResponse{}
	flush := func() error {
		batch.RecipientsScanned, batch.ReceiptsSent = scanned.Load(), sent
		err := stream.Send(batch)
		batch = &nbapb.ExportDecisionsResponse{}
		return err
	}
	err := s.dlog.store.ScanReceipts(ctx, req.GetFrom().AsTime(), req.GetTo().AsTime(), &scanned, func(_ string, recs [][]byte) error {
		for _, data := range recs {
			p, err := s.decodeReceipt(ctx, data)
			if err != nil {
				return fmt.Errorf("export: %w", arbiter.ErrCorrupt)
			}
			batch.Receipts = append(batch.Receipts, p)
			sent++
			if len(batch.Receipts) >= exportBatch {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err == nil {
		err = flush() // the last batch, and the final count
	}
	if err != nil {
		return toStatus(ctx, s.log, err)
	}
	return nil
}

// ------------------------------------------------------------ comparison

// diffDecided lists how a replayed decision differs from the logged one,
// field by field; floats are compared bit for bit.
func diffDecided(logged, got *nbapb.DecideResponse) []string {
	var d []string
	add := func(format string, args ...any) { d = append(d, fmt.Sprintf(format, args...)) }
	if logged.GetDecisionId() != got.GetDecisionId() {
		add("decision_id: logged %q, replayed %q", logged.GetDecisionId(), got.GetDecisionId())
	}
	if logged.GetPersona() != got.GetPersona() {
		add("persona: logged %q, replayed %q", logged.GetPersona(), got.GetPersona())
	}
	lr, gr := logged.GetRecommendations(), got.GetRecommendations()
	if len(lr) != len(gr) {
		add("recommendations: logged %d, replayed %d", len(lr), len(gr))
	}
	for i := range min(len(lr), len(gr)) {
		a, b := lr[i], gr[i]
		if a.GetActionId() != b.GetActionId() {
			add("recommendations[%d].action_id: logged %s, replayed %s", i, a.GetActionId(), b.GetActionId())
			continue
		}
		for _, f := range []struct {
			name string
			x, y float64
		}{{"score", a.GetScore(), b.GetScore()}, {"propensity", a.GetPropensity(), b.GetPropensity()},
			{"value", a.GetValue(), b.GetValue()}, {"context_weight", a.GetContextWeight(), b.GetContextWeight()}} {
			if math.Float64bits(f.x) != math.Float64bits(f.y) {
				add("recommendations[%d].%s: logged %v, replayed %v", i, f.name, f.x, f.y)
			}
		}
		if a.GetReason() != b.GetReason() {
			add("recommendations[%d].reason: logged %q, replayed %q", i, a.GetReason(), b.GetReason())
		}
		if !proto.Equal(a, b) && len(d) == 0 {
			add("recommendations[%d]: rules, journey or contributions differ", i)
		}
	}
	ls, gs := logged.GetSuppressed(), got.GetSuppressed()
	if len(ls) != len(gs) {
		add("suppressed: logged %d, replayed %d", len(ls), len(gs))
	}
	for i := range min(len(ls), len(gs)) {
		if !proto.Equal(ls[i], gs[i]) {
			add("suppressed[%d]: logged %s %s, replayed %s %s", i, ls[i].GetActionId(), ls[i].GetReason(),
				gs[i].GetActionId(), gs[i].GetReason())
		}
	}
	if len(d) == 0 && !proto.Equal(logged, got) {
		add("the versions or the decision time differ")
	}
	return capDiff(d)
}

// maxDifferences bounds the lines of a replay's differences: one changed
// input can shift every suppression after it.
const maxDifferences = 20

func capDiff(d []string) []string {
	if len(d) > maxDifferences {
		d = append(d[:maxDifferences], fmt.Sprintf("and %d more", len(d)-maxDifferences))
	}
	return d
}

func diffChecked(logged, got *nbapb.CheckSendResponse) []string {
	if proto.Equal(logged, got) {
		return nil
	}
	var d []string
	if logged.GetAllowed() != got.GetAllowed() {
		d = append(d, fmt.Sprintf("allowed: logged %v, replayed %v", logged.GetAllowed(), got.GetAllowed()))
	}
	if len(logged.GetBlocks()) != len(got.GetBlocks()) {
		d = append(d, fmt.Sprintf("blocks: logged %d, replayed %d", len(logged.GetBlocks()), len(got.GetBlocks())))
	}
	for i := range min(len(logged.GetBlocks()), len(got.GetBlocks())) {
		if !proto.Equal(logged.GetBlocks()[i], got.GetBlocks()[i]) {
			d = append(d, fmt.Sprintf("blocks[%d]: logged %s, replayed %s", i, logged.GetBlocks()[i].GetReason(), got.GetBlocks()[i].GetReason()))
		}
	}
	if len(d) == 0 {
		d = append(d, "the earliest allowed time, the reservation or the versions differ")
	}
	return capDiff(d)
}
