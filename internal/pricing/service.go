package pricing

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/promotion"
)

// ErrNotPublished means a promotion was saved in Postgres but its prices could not be published
// to Redis; the scheduler's periodic full recomputation publishes them later.
var ErrNotPublished = errors.New("saved, but prices not published yet")

// Service creates, changes and ends promotions and publishes the prices they affect. The HTTP
// API and orderctl promo both use it.
type Service struct {
	Store     *postgres.PromotionStore
	Publisher *Publisher
	Now       func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Defaults fills what a new promotion may leave out.
func Defaults(p *promotion.Promotion) {
	if p.TimeZone == "" {
		p.TimeZone = "UTC"
	}
	if p.OverCap == "" {
		p.OverCap = promotion.OverCapBase
	}
}

// Create validates, stores and publishes p. Errors: *order.InvalidError, postgres.ErrConflict
// (the id exists), ErrNotPublished (stored, publishing pending).
func (s *Service) Create(ctx context.Context, p promotion.Promotion) (promotion.Promotion, error) {
	Defaults(&p)
	p.StartsAt, p.EndsAt = p.StartsAt.UTC(), p.EndsAt.UTC()
	if err := p.Validate(); err != nil {
		return promotion.Promotion{}, err
	}
	stored, err := s.Store.Create(ctx, p)
	if err != nil {
		return promotion.Promotion{}, err
	}
	return stored, s.publish(ctx, stored)
}

// Update replaces the promotion with p.ID by p and publishes the prices of the SKUs it covered
// before and covers now. Errors as Create, and postgres.ErrNotFound.
func (s *Service) Update(ctx context.Context, p promotion.Promotion) (promotion.Promotion, error) {
	Defaults(&p)
	p.StartsAt, p.EndsAt = p.StartsAt.UTC(), p.EndsAt.UTC()
	if err := p.Validate(); err != nil {
		return promotion.Promotion{}, err
	}
	before, after, err := s.Store.Update(ctx, p)
	if err != nil {
		return promotion.Promotion{}, err
	}
	return after, s.publish(ctx, before, after)
}

// End ends the promotion with id now (an ended promotion stays ended) and publishes its prices.
func (s *Service) End(ctx context.Context, id string) (promotion.Promotion, error) {
	p, err := s.Store.End(ctx, id, s.now())
	if err != nil {
		return promotion.Promotion{}, err
	}
	return p, s.publish(ctx, p)
}

// Get returns one promotion.
func (s *Service) Get(ctx context.Context, id string) (promotion.Promotion, error) {
	return s.Store.Get(ctx, id)
}

// List returns promotions; with live, only those not ended.
func (s *Service) List(ctx context.Context, live bool) ([]promotion.Promotion, error) {
	return s.Store.List(ctx, live, s.now())
}

// Sales reports units and revenue per promotion.
func (s *Service) Sales(ctx context.Context, id string) ([]postgres.PromotionSales, error) {
	return s.Store.Sales(ctx, id)
}

func (s *Service) publish(ctx context.Context, ps ...promotion.Promotion) error {
	var skus []string
	for _, p := range ps {
		if p.Category == "" {
			skus = append(skus, p.SKUs...)
			continue
		}
		cat, err := s.Store.SKUsOfCategory(ctx, p.Category)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrNotPublished, err)
		}
		skus = append(skus, cat...)
	}
	slices.Sort(skus)
	skus = slices.Compact(skus)
	if len(skus) == 0 {
		return nil
	}
	if _, err := s.Publisher.Recompute(ctx, skus); err != nil {
		return fmt.Errorf("%w: %w", ErrNotPublished, err)
	}
	return nil
}
