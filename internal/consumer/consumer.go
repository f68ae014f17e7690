// Package consumer is the one Kafka poll loop every orderpipe worker shares: a consumer group
// member that hands batches of records to a [Handler], commits only what is done, retries what
// failed (in place with backoff, then through delayed retry topics) and dead-letters what cannot
// succeed, without ever letting one record block its partition for long. It also prefers a
// priority topic over the others with a bound on starvation, and exports metrics.
//
// # Offsets and delivery
//
// Delivery is at least once; handlers are idempotent by event id. The client uses
// cooperative-sticky balancing, BlockRebalanceOnPoll and no auto-commit. After each batch the loop
// commits, synchronously, per partition the offset after the last record of the longest settled
// prefix (a record is settled when the handler finished it, or when its copy in a retry or
// dead-letter topic was acknowledged by the broker), and only then allows a rebalance. So a commit
// always belongs to a partition the member owns, never runs ahead of durable work, and never goes
// backwards. OnPartitionsRevoked commits what was settled but not yet committed (a commit that
// failed earlier); OnPartitionsLost commits nothing. On shutdown the batch in hand is finished (its
// handler context stays live for Config.DrainTimeout) and committed, then the member leaves the
// group. A crash before a commit re-delivers the records.
//
// # Where a new group starts
//
// Config.StartAt is required: "earliest" reads a new group's source topics from their beginning,
// "latest" from their end. A partition's start position only matters while the group has no
// committed offset for it. With "latest", the consumer resolves the end offset when it is first
// assigned such a partition and commits it at once, so a rebalance before the first real commit
// cannot skip records produced in between (a plain reset-to-latest would). A group's own retry
// topics always start at the beginning: their records were written by the group itself. When a
// committed offset no longer exists (retention), franz-go resumes at the log start; when it
// detects data loss it rewinds a minute (its default): both re-process rather than skip.
//
// # Failures
//
// An error is [Permanent] or [Transient] (the default). A transient failure is retried in place:
// Handle is called again with just the failing records (still in partition order) with
// exponential backoff for Config.RetryInPlaceFor, which must stay well below the rebalance timeout
// because rebalances wait meanwhile. Then the record is produced to the group's first retry topic
// (event.RetryTopic(group, 1)) with a not-before time Config.RetryTiers[0] later; the consumer
// reads its own retry topics and does not process a copy before its not-before time (it pauses
// that retry partition until then: a tier's records are in time order). A failure in tier N goes
// to tier N+1, after the last tier to the dead-letter topic (event.DeadLetterTopic(group)); a
// permanent error goes there at once. Whether an error is permanent is what [ClassOf] says: its
// marker, or else its nature (a Postgres data, integrity or syntax error, an undecodable event).
// When several records of one handler call fail permanently with the same error (a handler that
// fails a batch as a unit), the loop isolates them before dead-lettering anything: it calls the
// handler again on halves of them until each such verdict comes from a call where no other
// record shared the error, so one poison record costs its
// batch a few smaller calls, not a trip through the retry tiers (isolate in batch.go). The
// source offset is committed only after the retry or
// dead-letter record is acknowledged, and after Config.OnDeadLetter returned nil. A panic in the
// handler is recovered and logged with its stack; a panicking batch is re-run record by record so
// that only the record that panics fails (transiently).
//
// InPlaceOnly mode (stock events, where order matters) never uses retry topics: a record failing
// transiently is retried until it succeeds or the consumer stops. After the in-place stage the
// loop rewinds that partition to the record and pauses only that partition, with capped
// exponential backoff between attempts; the group's other partitions keep flowing and rebalances
// are not held up. Records after the failing one in the same partition are delivered again once it
// succeeds (those the handler had already finished included; handlers that need strict order
// compare sequence numbers, as stock events do). Permanent errors still go to the dead-letter
// topic, so a poison record does not block its partition.
//
// With Config.DeadLetters, the group remembers (in Postgres) each event id it dead-lettered and
// why; a replay that delivers the same event again failing for the same cause settles it without
// a second dead letter, so the dead-letter topic, its counter and its alerts do not grow with
// replays. A re-driven record carries a raised redrive-count, which is part of the cause.
//
// The retry and dead-letter topics are provisioned like every other topic ([Config.OwnTopics]);
// Run refuses to start when a topic it reads or writes is missing.
//
// # Replay groups
//
// Config.Group is the logical group (the dedup name handlers claim events under, and the name of
// the retry and dead-letter topics); Config.GroupID, when set, is a different Kafka group id that
// owns the offsets. orderctl replay range uses it to re-process a range beside the live group:
// such a consumer has no retry topics (they are the live group's), retries in place, and writes
// its dead letters to the live group's dead-letter topic with a dlq-replay-group header.
//
// # Priority lane
//
// With Config.PriorityTopic set, each batch lists priority records first, and while the priority
// topic has a backlog (a batch's priority records were not the last ones in their partition) every
// other topic (retry topics included) is paused until it is worked off, but never for longer than
// Config.MaxStarve; priority records that the consumer keeps up with hold nothing back. Fetches are kept small (64 KiB per
// partition, 512 KiB per request, compressed) so that a buffered backlog of standard records
// delays priority records by one small fetch at most (lanes.go has the details).
//
// # Metrics
//
// orderpipe_consumer_batch_records and orderpipe_consumer_handle_duration_seconds (per handler
// call), orderpipe_consumer_records_total{outcome=done|retried|retry_topic|dead_lettered},
// orderpipe_consumer_dead_letters_total{topic,class} (by source topic),
// orderpipe_consumer_lag{topic,partition} (refreshed every Config.LagInterval through kadm) and
// orderpipe_consumer_lane_paused, all labelled by group. franz-go's own client metrics are not
// registered here; add kprom through Config.KafkaOpts if the process has no other client doing so.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/kafka"
)

// Where a new group starts reading its source topics.
const (
	StartEarliest = "earliest"
	StartLatest   = "latest"
)

// Defaults and bounds.
const (
	DefaultMaxPollRecords = 500
	DefaultMaxBackoff     = 5 * time.Second
	DefaultDrainTimeout   = 30 * time.Second
	DefaultLagInterval    = 5 * time.Second
	// MaxRetryInPlaceFor bounds Config.RetryInPlaceFor: rebalances wait while a batch is retried,
	// and the default rebalance timeout is 60s.
	MaxRetryInPlaceFor = 15 * time.Second

	initialBackoff = 50 * time.Millisecond
	forwardTimeout = 15 * time.Second // produce to a retry or dead-letter topic
	commitTimeout  = 10 * time.Second
	idlePoll       = time.Second
	fetchMaxWait   = 250 * time.Millisecond
	// With a priority topic, fetches are kept small so that priority records are seen after at
	// most a small buffered fetch of standard records.
	laneFetchMaxBytes     = 512 << 10
	laneFetchMaxPartBytes = 64 << 10
)

// Config configures a consumer.
type Config struct {
	// Group is the logical consumer group: it names the retry and dead-letter topics, labels the
	// metrics and logs, and is the name handlers claim processed events under. Stable.
	Group string
	// GroupID is the Kafka consumer group id that owns the committed offsets; empty means Group.
	// Only a replay group (orderctl replay range) sets it: it re-processes a range of the source
	// topics under its own offsets while handlers deduplicate under Group, the live group's name,
	// so nothing the live group did is done twice. A replay group has no retry topics (RetryTiers
	// must be empty: the live group's retry topics belong to the live group) and marks its dead
	// letters, written to the live group's dead-letter topic, with the dlq-replay-group header.
	GroupID  string
	Topics   []string // source topics (the priority topic among them when PriorityTopic is set)
	Brokers  []string
	ClientID string
	// StartAt is where a new group (no committed offsets) starts on its source topics:
	// "earliest" or "latest". Required: the choice is deliberate.
	StartAt string
	// MaxPollRecords bounds a batch; zero means DefaultMaxPollRecords.
	MaxPollRecords int

	// RetryInPlaceFor is how long transiently failing records of a batch are retried in place
	// with backoff before they move on (retry topic, or partition pause in InPlaceOnly mode).
	// Zero disables the in-place stage. At most MaxRetryInPlaceFor.
	RetryInPlaceFor time.Duration
	// RetryTiers are the delays of the retry topics <group>.retry.1..N; empty means none, and a
	// record that fails transiently after the in-place stage is dead-lettered.
	RetryTiers []time.Duration
	// InPlaceOnly retries transient failures in place until they succeed, pausing only the
	// failing partition between attempts; never uses retry topics. For stock events.
	InPlaceOnly bool
	// MaxBackoff caps the interval between retries; zero means DefaultMaxBackoff.
	MaxBackoff time.Duration

	// PriorityTopic, if set, is preferred: while it yields records the other topics are paused,
	// but never for longer than MaxStarve (required with PriorityTopic).
	PriorityTopic string
	MaxStarve     time.Duration

	// OnDeadLetter, if set, is called after a record's dead-letter copy was acknowledged and
	// before its offset is committed, with the record as consumed, its error class and error.
	// If it returns an error the record is not committed: it is delivered again later (and
	// dead-lettered again: dead-letter topics may hold duplicates).
	OnDeadLetter func(ctx context.Context, rec *kgo.Record, class string, err error) error
	// DeadLetters, if set, remembers the events the group dead-lettered and why (event id, error
	// class and text, redrive-count): a record whose event was dead-lettered before for the same
	// cause (a replay of the source topics delivers it again) is settled without a second dead
	// letter, OnDeadLetter call or dead-letter count.
	DeadLetters DeadLetterMemory

	// DrainTimeout bounds how long the batch in hand may take after Run's context ends (its
	// handler context is cancelled then); zero means DefaultDrainTimeout.
	DrainTimeout time.Duration
	// LagInterval is how often the lag gauge is refreshed; zero means DefaultLagInterval,
	// negative disables it.
	LagInterval time.Duration

	Registerer prometheus.Registerer // consumer metrics; nil disables them
	Log        *slog.Logger          // nil discards
	KafkaOpts  []kgo.Opt             // extra client options, applied last (tests, kprom hooks)
}

// OwnTopics returns the topics the group writes and must exist besides its source topics: its
// retry topics (none in InPlaceOnly mode) and its dead-letter topic.
func (cfg Config) OwnTopics() []string {
	var ts []string
	if !cfg.InPlaceOnly {
		for i := range cfg.RetryTiers {
			ts = append(ts, event.RetryTopic(cfg.Group, i+1))
		}
	}
	return append(ts, event.DeadLetterTopic(cfg.Group))
}

// KafkaGroup is the Kafka consumer group id: GroupID, or Group when GroupID is empty.
func (cfg Config) KafkaGroup() string {
	if cfg.GroupID != "" {
		return cfg.GroupID
	}
	return cfg.Group
}

// replay reports whether the consumer is a replay group (its Kafka group id is not Group).
func (cfg Config) replay() bool { return cfg.KafkaGroup() != cfg.Group }

func (cfg *Config) validate() error {
	switch {
	case cfg.Group == "":
		return errors.New("consumer: Group is required")
	case cfg.replay() && len(cfg.RetryTiers) > 0:
		return fmt.Errorf("consumer %s: replay group %s cannot use retry topics (they belong to the live group): RetryTiers must be empty", cfg.Group, cfg.GroupID)
	case len(cfg.Brokers) == 0:
		return fmt.Errorf("consumer %s: Brokers is required", cfg.Group)
	case len(cfg.Topics) == 0:
		return fmt.Errorf("consumer %s: Topics is required", cfg.Group)
	case cfg.StartAt != StartEarliest && cfg.StartAt != StartLatest:
		return fmt.Errorf("consumer %s: StartAt %q: want %q or %q", cfg.Group, cfg.StartAt, StartEarliest, StartLatest)
	case cfg.MaxPollRecords < 0:
		return fmt.Errorf("consumer %s: MaxPollRecords %d is negative", cfg.Group, cfg.MaxPollRecords)
	case cfg.RetryInPlaceFor < 0 || cfg.RetryInPlaceFor > MaxRetryInPlaceFor:
		return fmt.Errorf("consumer %s: RetryInPlaceFor %s: want 0..%s", cfg.Group, cfg.RetryInPlaceFor, MaxRetryInPlaceFor)
	case cfg.InPlaceOnly && len(cfg.RetryTiers) > 0:
		return fmt.Errorf("consumer %s: InPlaceOnly and RetryTiers exclude each other", cfg.Group)
	case cfg.MaxBackoff < 0:
		return fmt.Errorf("consumer %s: MaxBackoff %s is negative", cfg.Group, cfg.MaxBackoff)
	case cfg.PriorityTopic != "" && !slices.Contains(cfg.Topics, cfg.PriorityTopic):
		return fmt.Errorf("consumer %s: PriorityTopic %s is not among Topics", cfg.Group, cfg.PriorityTopic)
	case cfg.PriorityTopic != "" && cfg.MaxStarve <= 0:
		return fmt.Errorf("consumer %s: MaxStarve is required with PriorityTopic", cfg.Group)
	case cfg.DrainTimeout < 0:
		return fmt.Errorf("consumer %s: DrainTimeout %s is negative", cfg.Group, cfg.DrainTimeout)
	}
	for i, d := range cfg.RetryTiers {
		if d <= 0 {
			return fmt.Errorf("consumer %s: RetryTiers[%d] %s is not positive", cfg.Group, i, d)
		}
	}
	own := cfg.OwnTopics()
	for _, t := range cfg.Topics {
		if slices.Contains(own, t) {
			return fmt.Errorf("consumer %s: source topic %s is one of the group's own topics", cfg.Group, t)
		}
	}
	if cfg.MaxPollRecords == 0 {
		cfg.MaxPollRecords = DefaultMaxPollRecords
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = DefaultDrainTimeout
	}
	if cfg.LagInterval == 0 {
		cfg.LagInterval = DefaultLagInterval
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}

type tp struct {
	topic     string
	partition int32
}

// failure is a partition whose next record is waiting to be retried (InPlaceOnly mode, or a
// forward that could not be produced).
type failure struct {
	offset   int64
	attempts int
	b        *backoff.ExponentialBackOff
}

// Consumer is one member of a consumer group running one poll loop.
type Consumer struct {
	cfg   Config
	h     Handler // the caller's handler inside recover and metrics
	cl    *kgo.Client
	log   *slog.Logger
	m     *metrics
	tiers map[string]int // topic -> retry tier; 0 for source topics
	lanes *lanes

	// mu guards the state below, shared between the poll loop and the rebalance callbacks.
	mu        sync.Mutex
	resumeAt  map[tp]time.Time       // partitions paused until then
	failing   map[tp]*failure        // partitions rewound to a failing record
	committed map[tp]int64           // last offset committed by this member, per owned partition
	pending   map[tp]kgo.EpochOffset // settled but not committed (a failed commit)
	started   bool
}

// New builds a consumer and its Kafka client. The client joins the group at once; call Run, which
// closes it when it returns.
func New(cfg Config, h Handler) (*Consumer, error) {
	if h == nil {
		return nil, errors.New("consumer: handler is nil")
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", cfg.Group, err)
	}
	m.zero(cfg.Group, cfg.Topics)
	c := &Consumer{
		cfg:       cfg,
		log:       cfg.Log,
		m:         m,
		tiers:     make(map[string]int),
		resumeAt:  make(map[tp]time.Time),
		failing:   make(map[tp]*failure),
		committed: make(map[tp]int64),
		pending:   make(map[tp]kgo.EpochOffset),
	}
	c.h = chain(h, instrumented(m, cfg.Group), recoverer(c.log, cfg.Group))
	topics := slices.Clone(cfg.Topics)
	for _, t := range topics {
		c.tiers[t] = 0
	}
	if !cfg.InPlaceOnly {
		for i := range cfg.RetryTiers {
			t := event.RetryTopic(cfg.Group, i+1)
			c.tiers[t] = i + 1
			topics = append(topics, t)
		}
	}
	opts := []kgo.Opt{
		kgo.ConsumerGroup(cfg.KafkaGroup()),
		kgo.ConsumeTopics(topics...),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeStartOffset(kgo.NewOffset().AtStart()),
		kgo.AdjustFetchOffsetsFn(c.adjustStart),
		kgo.OnPartitionsRevoked(c.onRevoked),
		kgo.OnPartitionsLost(c.onLost),
		kgo.FetchMaxWait(fetchMaxWait),
	}
	if cfg.PriorityTopic != "" {
		opts = append(opts, kgo.FetchMaxBytes(laneFetchMaxBytes), kgo.FetchMaxPartitionBytes(laneFetchMaxPartBytes))
	}
	opts = append(opts, cfg.KafkaOpts...)
	cl, err := kafka.NewClient(kafka.ClientConfig{Brokers: cfg.Brokers, ClientID: cfg.ClientID, ProduceTimeout: forwardTimeout}, opts...)
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", cfg.Group, err)
	}
	c.cl = cl
	if cfg.PriorityTopic != "" {
		var standard []string
		for _, t := range topics {
			if t != cfg.PriorityTopic {
				standard = append(standard, t)
			}
		}
		c.lanes = &lanes{cl: cl, priority: cfg.PriorityTopic, standard: standard, maxStarve: cfg.MaxStarve,
			gauge: m.lanePaused.WithLabelValues(cfg.Group), behind: make(map[int32]bool)}
		c.lanes.gauge.Set(0)
	}
	return c, nil
}

// Client is the consumer's Kafka client, for readiness checks and lag; the worker may also produce
// with it. Run closes it.
func (c *Consumer) Client() *kgo.Client { return c.cl }

// Run consumes until ctx ends, then stops fetching, finishes and commits the batch in hand, leaves
// the group, closes the client and returns nil. It returns an error if it cannot start (a topic
// is missing) or the client is closed under it. Run may be called once.
func (c *Consumer) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.started {
		c.mu.Unlock()
		return fmt.Errorf("consumer %s: Run called twice", c.cfg.Group)
	}
	c.started = true
	c.mu.Unlock()

	// The batch in hand finishes after ctx ends, within DrainTimeout.
	drainCtx, cancelDrain := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelDrain()
	stopDrain := context.AfterFunc(ctx, func() { time.AfterFunc(c.cfg.DrainTimeout, cancelDrain) })
	defer stopDrain()

	lagCtx, stopLag := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		stopLag()
		wg.Wait()
		c.cl.AllowRebalance()
		c.commitPending(drainCtx)
		c.cl.Close() // leaves the group; OnPartitionsRevoked commits anything left
	}()

	if err := c.checkTopics(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return err
	}
	if c.cfg.LagInterval > 0 {
		wg.Go(func() { c.refreshLag(lagCtx, c.cfg.LagInterval) })
	}
	c.log.LogAttrs(ctx, slog.LevelInfo, "consumer started", slog.String("group", c.cfg.Group),
		slog.String("group_id", c.cfg.KafkaGroup()), slog.Any("topics", c.cfg.Topics), slog.String("start_at", c.cfg.StartAt))

	for ctx.Err() == nil {
		now := time.Now()
		wait := c.resumeDue(now)
		c.lanes.beforePoll(now)
		pollCtx, cancel := context.WithTimeout(ctx, c.lanes.pollWait(wait))
		fetches := c.cl.PollRecords(pollCtx, c.cfg.MaxPollRecords)
		idle := pollCtx.Err() != nil && ctx.Err() == nil
		cancel()
		if fetches.IsClientClosed() {
			return fmt.Errorf("consumer %s: client closed", c.cfg.Group)
		}
		fetches.EachError(func(t string, p int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				return
			}
			c.log.LogAttrs(ctx, slog.LevelWarn, "fetch error", slog.String("group", c.cfg.Group),
				slog.String("topic", t), slog.Int("partition", int(p)), slog.Any("error", err))
		})
		recs := fetches.Records()
		var hasStandard bool
		c.lanes.observe(fetches, c.cfg.MaxPollRecords)
		if c.lanes.enabled() && len(recs) > 0 {
			// Priority records first; each partition keeps its order.
			slices.SortStableFunc(recs, func(a, b *kgo.Record) int {
				return boolRank(a.Topic != c.cfg.PriorityTopic) - boolRank(b.Topic != c.cfg.PriorityTopic)
			})
			hasStandard = recs[len(recs)-1].Topic != c.cfg.PriorityTopic
		}
		if len(recs) > 0 {
			c.process(ctx, drainCtx, recs) // commits, including earlier commits that failed
		}
		c.lanes.afterPoll(time.Now(), hasStandard, idle && len(recs) == 0)
		c.cl.AllowRebalance()
	}
	c.log.LogAttrs(drainCtx, slog.LevelInfo, "consumer stopping", slog.String("group", c.cfg.Group))
	return nil
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// checkTopics fails fast when a topic the group reads or writes does not exist: topics are never
// auto-created.
func (c *Consumer) checkTopics(ctx context.Context) error {
	want := append(slices.Clone(c.cfg.Topics), c.cfg.OwnTopics()...)
	details, err := kadm.NewClient(c.cl).ListTopics(ctx, want...)
	if err != nil {
		return fmt.Errorf("consumer %s: list topics: %w", c.cfg.Group, err)
	}
	var missing []string
	for _, t := range want {
		if d, ok := details[t]; !ok || d.Err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("consumer %s: topics missing: %v (provision them: orderctl topics --create)", c.cfg.Group, missing)
	}
	return nil
}

// resumeDue resumes the partitions whose pause has ended and returns how long the next poll may
// wait before another one ends.
func (c *Consumer) resumeDue(now time.Time) time.Duration {
	c.mu.Lock()
	wait := idlePoll
	resume := make(map[string][]int32)
	for k, at := range c.resumeAt {
		if d := at.Sub(now); d > 0 {
			wait = min(wait, d)
			continue
		}
		resume[k.topic] = append(resume[k.topic], k.partition)
		delete(c.resumeAt, k)
	}
	c.mu.Unlock()
	if len(resume) > 0 {
		c.cl.ResumeFetchPartitions(resume)
	}
	return max(wait, time.Millisecond)
}

// adjustStart decides where partitions without a committed offset start: retry topics and, with
// StartAt "earliest", source topics at the beginning (the client's start offset). With "latest",
// a source partition starts at its end offset, which is committed right away.
func (c *Consumer) adjustStart(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	if c.cfg.StartAt != StartLatest {
		return offsets, nil
	}
	var topics []string
	for t, ps := range offsets {
		if c.tiers[t] != 0 {
			continue
		}
		for _, o := range ps {
			if o.EpochOffset().Offset < 0 {
				topics = append(topics, t)
				break
			}
		}
	}
	if len(topics) == 0 {
		return offsets, nil
	}
	ends, err := kadm.NewClient(c.cl).ListEndOffsets(ctx, topics...)
	if err != nil {
		c.log.LogAttrs(ctx, slog.LevelWarn, "end offsets unknown; starting new partitions at their end without pinning it",
			slog.String("group", c.cfg.Group), slog.Any("error", err))
	}
	pin := make(map[string]map[int32]kgo.EpochOffset)
	for _, t := range topics {
		for p, o := range offsets[t] {
			if o.EpochOffset().Offset >= 0 {
				continue
			}
			e, ok := ends.Lookup(t, p)
			if err != nil || !ok || e.Err != nil {
				offsets[t][p] = kgo.NewOffset().AtEnd()
				continue
			}
			offsets[t][p] = kgo.NewOffset().At(e.Offset)
			if pin[t] == nil {
				pin[t] = make(map[int32]kgo.EpochOffset)
			}
			pin[t][p] = kgo.EpochOffset{Epoch: -1, Offset: e.Offset}
		}
	}
	if len(pin) > 0 {
		if err := commitSync(ctx, c.cl, pin); err != nil {
			c.log.LogAttrs(ctx, slog.LevelWarn, "start offsets not pinned", slog.String("group", c.cfg.Group), slog.Any("error", err))
		} else {
			c.mu.Lock()
			for t, ps := range pin {
				for p, eo := range ps {
					c.committed[tp{t, p}] = eo.Offset
				}
			}
			c.mu.Unlock()
			c.log.LogAttrs(ctx, slog.LevelInfo, "new group partitions start at their end", slog.String("group", c.cfg.Group), slog.Any("offsets", pin))
		}
	}
	return offsets, nil
}

// onRevoked commits what was settled but not committed on the revoked partitions, then forgets
// them. With BlockRebalanceOnPoll it never runs while a batch is being processed.
func (c *Consumer) onRevoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	c.mu.Lock()
	commit := make(map[string]map[int32]kgo.EpochOffset)
	for t, ps := range revoked {
		for _, p := range ps {
			if eo, ok := c.pending[tp{t, p}]; ok {
				if commit[t] == nil {
					commit[t] = make(map[int32]kgo.EpochOffset)
				}
				commit[t][p] = eo
			}
		}
	}
	c.mu.Unlock()
	if len(commit) > 0 {
		cctx, cancel := context.WithTimeout(ctx, commitTimeout)
		err := commitSync(cctx, cl, commit)
		cancel()
		if err != nil {
			c.log.LogAttrs(ctx, slog.LevelWarn, "commit on revoke", slog.String("group", c.cfg.Group), slog.Any("error", err))
		}
	}
	c.forget(revoked)
}

// onLost forgets the partitions without committing: they may already belong to another member.
func (c *Consumer) onLost(ctx context.Context, _ *kgo.Client, lost map[string][]int32) {
	c.log.LogAttrs(ctx, slog.LevelWarn, "partitions lost", slog.String("group", c.cfg.Group), slog.Any("partitions", lost))
	c.forget(lost)
}

// forget drops the state of partitions this member no longer owns, resuming those it had paused
// (a pause is client state: it would outlive the assignment).
func (c *Consumer) forget(parts map[string][]int32) {
	c.lanes.forget(parts)
	c.mu.Lock()
	resume := make(map[string][]int32)
	for t, ps := range parts {
		for _, p := range ps {
			k := tp{t, p}
			if _, ok := c.resumeAt[k]; ok {
				resume[t] = append(resume[t], p)
			}
			delete(c.resumeAt, k)
			delete(c.failing, k)
			delete(c.committed, k)
			delete(c.pending, k)
		}
	}
	c.mu.Unlock()
	if len(resume) > 0 {
		c.cl.ResumeFetchPartitions(resume)
	}
}

// commit adds next (settled positions) to the pending commits and commits them all, synchronously.
func (c *Consumer) commit(ctx context.Context, next map[tp]kgo.EpochOffset) {
	c.mu.Lock()
	for k, eo := range next {
		if last, ok := c.committed[k]; ok && eo.Offset <= last {
			continue
		}
		if p, ok := c.pending[k]; ok && eo.Offset <= p.Offset {
			continue
		}
		c.pending[k] = eo
	}
	c.mu.Unlock()
	c.commitPending(ctx)
}

// commitPending commits the settled positions not committed yet.
func (c *Consumer) commitPending(ctx context.Context) {
	c.mu.Lock()
	if len(c.pending) == 0 {
		c.mu.Unlock()
		return
	}
	offsets := make(map[string]map[int32]kgo.EpochOffset)
	sent := make(map[tp]kgo.EpochOffset, len(c.pending))
	for k, eo := range c.pending {
		if offsets[k.topic] == nil {
			offsets[k.topic] = make(map[int32]kgo.EpochOffset)
		}
		offsets[k.topic][k.partition] = eo
		sent[k] = eo
	}
	c.mu.Unlock()

	cctx, cancel := context.WithTimeout(ctx, commitTimeout)
	err := commitSync(cctx, c.cl, offsets)
	cancel()
	if err != nil {
		c.log.LogAttrs(ctx, slog.LevelWarn, "commit", slog.String("group", c.cfg.Group), slog.Any("error", err))
		return
	}
	c.mu.Lock()
	for k, eo := range sent {
		if c.pending[k] == eo {
			delete(c.pending, k)
		}
		if last, ok := c.committed[k]; !ok || eo.Offset > last {
			c.committed[k] = eo.Offset
		}
	}
	c.mu.Unlock()
}

// commitSync commits offsets and returns the request's or the first partition's error.
func commitSync(ctx context.Context, cl *kgo.Client, offsets map[string]map[int32]kgo.EpochOffset) error {
	var rerr error
	cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			rerr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					rerr = fmt.Errorf("%s/%d: %w", t.Topic, p.Partition, err)
					return
				}
			}
		}
	})
	return rerr
}
