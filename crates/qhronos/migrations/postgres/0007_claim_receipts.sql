-- Pull claims carry a receipt: a random value set by each claim and handed to the claimant only.
-- Ack and nack must present it, so nobody else (another token in scope, or the same consumer
-- late, after its claim expired and the occurrence was claimed again) can settle the claim.
ALTER TABLE occurrences ADD COLUMN claim_receipt TEXT;
