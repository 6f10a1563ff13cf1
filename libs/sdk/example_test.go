package assent_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	assent "github.com/assent-dev/assent/libs/sdk"
)

// A backend service asks before it deploys, and deploys only on approval.
func ExampleClient_RequestApproval() {
	client, err := assent.New([]string{"http://127.0.0.1:8080", "http://127.0.0.1:8081"}, "demo-billing")
	if err != nil {
		log.Fatal(err)
	}
	// How long a person may take to decide; the policy's ttl caps it too.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	d, err := client.RequestApproval(ctx, assent.SubmitRequest{
		RequestID: "billing-api-deploy-8841", // a pipeline's retry resubmits the same request
		Action: assent.Action{
			Type: "deploy", Resource: "services/billing/api", Environment: "production",
			Details: map[string]any{"version": "1.4.2", "commit": "9f2c1e7a4b"},
		},
		Reason: "Release 1.4.2: fixes the rounding of partial refunds",
	})
	switch {
	case errors.Is(err, assent.ErrPending):
		log.Fatalf("nobody decided on %s in time; not deploying", d.RequestID)
	case err != nil:
		log.Fatalf("approval refused or failed: %v", err) // assent.CodeOf(err) says why
	case !d.Approved:
		log.Fatalf("deploy %s by %v; not deploying", d.Status, d.DecidedBy)
	}
	fmt.Println("approved by", d.DecidedBy, "- deploying")
}

// Refusals carry a stable reason code to branch on.
func ExampleIsCode() {
	// What Submit returns when no policy covers the action.
	var err error = assent.NewRefusal(assent.CodeNoPolicy, `no policy matches action type "deploy" on "services/billing/api" in "qa"`)

	var p *assent.Problem
	switch {
	case assent.IsCode(err, assent.CodeNoPolicy):
		fmt.Println("no rule covers this action; ask the policy owners")
	case errors.As(err, &p):
		fmt.Println("refused:", p.Code, p.Detail)
	}
	fmt.Println(err)
	// Output:
	// no rule covers this action; ask the policy owners
	// assent: 422 no_policy: no policy matches action type "deploy" on "services/billing/api" in "qa"
}

// Only Approved means go ahead.
func ExampleDecisionOf() {
	for _, s := range []assent.Status{assent.StatusApproved, assent.StatusRejected, assent.StatusExpired, assent.StatusPending} {
		d := assent.DecisionOf(&assent.RequestView{ID: "r-1", Status: s})
		fmt.Printf("%-9s terminal=%-5v approved=%v\n", s, s.Terminal(), d.Approved)
	}
	// Output:
	// approved  terminal=true  approved=true
	// rejected  terminal=true  approved=false
	// expired   terminal=true  approved=false
	// pending   terminal=false approved=false
}

// An approver lists what they may still vote on, and approves.
func ExampleClient_ListAll() {
	client, err := assent.New([]string{"http://127.0.0.1:8080"}, "demo-alice",
		assent.WithPrincipal("user:alice@example.com"))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	for r, err := range client.ListAll(ctx, assent.ListOptions{Approver: "user:alice@example.com"}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(r.ID, r.Action.Type, r.Action.Resource, r.Reason)
		if _, err := client.Vote(ctx, r.ID, assent.VoteRequest{Decision: assent.Approve, Comment: "looks good"}); err != nil {
			log.Print(err)
		}
	}
}

// Submit and follow a request separately, for callers that do not block.
func ExampleClient_GetWait() {
	client, err := assent.New([]string{"http://127.0.0.1:8080"}, "demo-billing")
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	v, err := client.Submit(ctx, assent.SubmitRequest{
		Action: assent.Action{Type: "config_change", Resource: "billing/limits", Environment: "production"},
		Reason: "raise the refund limit for the month-end run",
	})
	if err != nil {
		log.Fatal(err)
	}
	for !v.Status.Terminal() {
		if v, err = client.GetWait(ctx, v.ID, 30*time.Second); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println(v.ID, v.Status)
}
