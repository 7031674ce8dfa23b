-- Every search order's index also holds the columns the search filters on (all but the text
-- search), so that SQLite judges a candidate from the index and reads the doctor's row only for
-- the ones it keeps: a filtered page walks many more candidates than it returns.
DROP INDEX doctors_by_rating;
DROP INDEX doctors_by_fee;
DROP INDEX doctors_by_experience;
DROP INDEX doctors_by_approval;
DROP INDEX doctors_specialization_by_rating;
DROP INDEX doctors_specialization_by_fee;
DROP INDEX doctors_specialization_by_experience;
DROP INDEX doctors_specialization_by_approval;

CREATE INDEX doctors_by_rating ON doctors (verification_status, rating_average, id,
    specialization_key, fee_amount, fee_currency, experience_years, language_keys);
CREATE INDEX doctors_by_fee ON doctors (verification_status, fee_amount, id,
    specialization_key, fee_currency, experience_years, rating_average, language_keys);
CREATE INDEX doctors_by_experience ON doctors (verification_status, experience_years, id,
    specialization_key, fee_amount, fee_currency, rating_average, language_keys);
CREATE INDEX doctors_by_approval ON doctors (verification_status, approved_at, id,
    specialization_key, fee_amount, fee_currency, experience_years, rating_average, language_keys);
CREATE INDEX doctors_specialization_by_rating ON doctors (specialization_key, verification_status,
    rating_average, id, fee_amount, fee_currency, experience_years, language_keys);
CREATE INDEX doctors_specialization_by_fee ON doctors (specialization_key, verification_status,
    fee_amount, id, fee_currency, experience_years, rating_average, language_keys);
CREATE INDEX doctors_specialization_by_experience ON doctors (specialization_key,
    verification_status, experience_years, id, fee_amount, fee_currency, rating_average,
    language_keys);
CREATE INDEX doctors_specialization_by_approval ON doctors (specialization_key,
    verification_status, approved_at, id, fee_amount, fee_currency, experience_years,
    rating_average, language_keys);
