package orderctl_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// alertedSeries are the counter series that deploy/prometheus/alerts.yml and the Grafana
// dashboard read with increase() or rate(), by the process that exports them, for label values
// known before anything happened.
var alertedSeries = map[string][]string{
	"api": {
		`orderpipe_intake_orders_total{outcome="accepted"}`,
		`orderpipe_intake_orders_total{outcome="unavailable"}`,
		`orderpipe_intake_orders_total{outcome="out_of_stock"}`,
		`orderpipe_intake_priority_lane_total{reason="express"}`,
		`orderpipe_intake_soldout_fastpath_total`,
		`orderpipe_http_requests_total{code="500",method="POST",route="/v1/orders"}`,
		`orderpipe_http_requests_total{code="500",method="GET",route="/v1/orders/:id"}`,
		`orderpipe_http_rate_limited_total{source="redis"}`,
	},
	"order-worker": {
		`orderpipe_consumer_dead_letters_total{class="transient",group="order-worker",topic="orders.placed"}`,
		`orderpipe_consumer_dead_letters_total{class="permanent",group="order-worker",topic="orders.placed"}`,
		`orderpipe_consumer_dead_letters_total{class="transient",group="order-worker",topic="orders.placed.priority"}`,
		`orderpipe_consumer_records_total{group="order-worker",outcome="dead_lettered"}`,
		`orderpipe_worker_orders_total{reason="",status="confirmed"}`,
		`orderpipe_worker_orders_total{reason="payment_declined",status="cancelled"}`,
		`orderpipe_worker_guard_refusals_total`,
		`orderpipe_worker_late_confirms_total`,
		`orderpipe_payment_requests_total{op="charge",outcome="transient"}`,
		`orderpipe_payment_retries_total{op="charge"}`,
	},
	"inventory-sync": {
		`orderpipe_consumer_dead_letters_total{class="permanent",group="inventory-sync",topic="inventory.stock"}`,
		`orderpipe_reconcile_runs_total{mode="check",result="error"}`,
		`orderpipe_reconcile_runs_total{mode="repair",result="ok"}`,
		`orderpipe_reaper_runs_total{result="error"}`,
		`orderpipe_reaper_runs_total{result="ok"}`,
		`orderpipe_holds_expired_total`,
	},
	"notifier": {
		`orderpipe_consumer_dead_letters_total{class="transient",group="notifier",topic="orders.events"}`,
		`orderpipe_consumer_dead_letters_total{class="transient",group="reports",topic="orders.events"}`,
		`orderpipe_notifier_send_failures_total{class="connect"}`,
		`orderpipe_notifier_send_failures_total{class="recipient"}`,
		`orderpipe_notifier_emails_sent_total{kind="order_confirmed"}`,
	},
}

// Every counter an alert or a dashboard panel reads exists as soon as the process serves /metrics
// (at 0 until something happens; the reaper and reconciliation run once at start) (issue 18 row 13): increase() and rate() see nothing of a
// series until its second sample, so a counter that first appears at 3 never fires
// OrderpipeOrdersDeadLettered (deploy/prometheus/alerts_test.yml has the rule test).
func TestAlertedCountersExistAtStart(t *testing.T) {
	t.Parallel()
	s := newSystem(t, sysOptions{stock: 10})
	urls := map[string]string{"api": s.API.URL}
	for name := range sysProcs {
		urls[name] = s.proc(name).URL
	}
	for proc, series := range alertedSeries {
		resp, err := http.Get(urls[proc] + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range series {
			if !strings.Contains(string(b), "\n"+want+" ") {
				t.Errorf("%s /metrics: no series %s at start", proc, want)
			}
		}
	}
}
